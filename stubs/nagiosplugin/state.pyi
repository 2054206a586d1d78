class ServiceState:
    code: int
    text: str
    def __int__(self) -> int: ...

Ok: ServiceState
Warn: ServiceState
Critical: ServiceState
Unknown: ServiceState
