"""What the tests serve as a FastCGI server's replies: PHP-FPM status pages
exactly as fpm_status.c prints them, and GET_VALUES results, each behind a
real socket (tests.servers)."""

from __future__ import annotations

from fcgi_wire import RecordType, encode_pairs, encode_record
from tests import servers

HEAD = (
    '{"pool":"www","process manager":"dynamic","start time":1700000000,"start since":3600,'
    '"accepted conn":1234,"listen queue":0,"max listen queue":2,"listen queue len":511,'
    '"idle processes":3,"active processes":2,"total processes":5,"max active processes":5,'
    '"max children reached":1,"slow requests":7'
)


def process(pid: int, state: str, duration: str, uri: str, *, user: str = "-", script: str = "-") -> str:
    """One entry exactly as fpm_status.c prints it: uri, user and script raw."""
    return (
        f'{{"pid":{pid},"state":"{state}","start time":1700000000,"start since":3600,"requests":10,'
        f'"request duration":{duration},"request method":"GET","request uri":"{uri}","content length":0,'
        f'"user":"{user}","script":"{script}","last request cpu":0.00,"last request memory":0}}'
    )


def page(*processes: str) -> bytes:
    if not processes:
        return (HEAD + "}").encode()
    return (HEAD + ', "processes":[' + ",".join(processes) + "]}").encode()


OWN = process(1, "Running", "150", "/status?json&full")


def serve(body: bytes, status_line: bytes = b"") -> servers.ScriptedServer:
    headers = status_line + b"Content-Type: application/json\r\n\r\n"
    return servers.ScriptedServer(servers.responds(servers.fastcgi_reply(headers + body)))


def values_server(pairs: list) -> servers.ScriptedServer:
    reply = encode_record(RecordType.GET_VALUES_RESULT, 0, encode_pairs(pairs))

    def handler(conn, stopping):  # type: ignore[no-untyped-def]
        servers.read_request(conn)
        conn.sendall(reply)
        stopping.wait()

    return servers.ScriptedServer(handler)
