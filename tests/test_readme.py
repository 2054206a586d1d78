"""What the README must say and where: the operator's path first, the
warnings that keep a check from becoming a hole."""

from __future__ import annotations

from tests.engines import ROOT


def test_readme_warns_about_param() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "can run any PHP file the pool can read" in readme
    assert "PHP_ADMIN_VALUE" in readme


def test_readme_recommends_isolated_mode_for_dash_m() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 -I -m check_fastcgi" in readme
    assert "python -m check_fastcgi" not in readme


def test_the_readme_starts_with_install_and_keeps_deep_reference_in_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    headings = [line for line in readme.splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Install", "## Try it, test it"], headings
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "install -m 0755 dist/check_fastcgi.pyz /usr/lib/nagios/plugins/check_fastcgi" in install
    assert "ln -s /opt/check_fastcgi/bin/check_fastcgi /usr/lib/nagios/plugins/check_fastcgi" in install
    for doc in ("docs/interoperability.md", "docs/fcgi_wire.md"):
        assert (ROOT / doc).exists() and f"]({doc})" in readme
