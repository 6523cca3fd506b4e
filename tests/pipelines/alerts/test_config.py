"""[alerts] config: errors name the field; the documented examples load; the
documented webhook verification recipe accepts real signed requests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leaksentry.config import load_config
from leaksentry.errors import ConfigError
from pipelines.alerts.channels import Outgoing, build_channel

DOC = Path(__file__).resolve().parents[3] / "docs" / "alerts.md"


def toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "leaksentry.toml"
    p.write_text(f'[state]\ndir = "{tmp_path}"\n' + text)
    return p


def test_documented_config_loads(tmp_path):
    rules, channels = toml_blocks()
    s = load_config(write(tmp_path, channels + rules))
    a = s.alerts
    assert [c.type for c in a.channels] == ["email", "webhook", "slack", "teams", "syslog"]
    assert a.dedupe_window == 7 * 86400 and a.digest_interval == 3600
    assert a.channels[0].effective_port == 587 and a.rules[1].kinds == ["hn"]


@pytest.mark.parametrize(("text", "expect"), [
    ('[[alerts.rules]]\nchannels = ["nope"]\n', "unknown channel 'nope'"),
    ('[[alerts.channels]]\nname = "a"\ntype = "pager"\n', "alerts.channels[0]"),
    ('[[alerts.channels]]\nname = "a"\ntype = "slack"\n', "set url or url_env"),
    ('[[alerts.channels]]\nname = "a"\ntype = "syslog"\n[[alerts.channels]]\nname = "a"\n'
     'type = "syslog"\n', "duplicate channel name 'a'"),
    ('[alerts]\nmin_severity = "severe"\n', "alerts.min_severity"),
    ('[alerts]\ndigest_interval = "soon"\n', "invalid duration"),
    ('[[alerts.channels]]\nname = "m"\ntype = "email"\nhost = "h"\nto = []\n', "alerts.channels"),
])
def test_bad_config_names_the_field(tmp_path, text, expect):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert expect in str(err.value)


def test_documented_verification_recipe_accepts_a_real_request(kit, tmp_path, receivers):
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    ns: dict = {}
    exec(code, ns)  # the recipe exactly as documented
    r = kit.start_receiver(kit.Receiver(secret=None))
    receivers.append(r)
    cfg = kit.settings_with(tmp_path, [{"name": "h", "type": "webhook", "url": r.url,
                                        "secret": "s3cret"}]).alerts.channels[0]
    build_channel(cfg).send(Outgoing(1, "test", "low", {"kind": "test"}, "k1"))
    (req,) = r.requests
    headers = {k.title(): v for k, v in req.headers.items()}
    headers["X-LeakSentry-Timestamp"] = req.headers["x-leaksentry-timestamp"]
    headers["X-LeakSentry-Signature"] = req.headers["x-leaksentry-signature"]
    assert ns["verify"](b"s3cret", headers, req.body)
    assert not ns["verify"](b"other", headers, req.body)
    assert not ns["verify"](b"s3cret", headers, req.body + b" ")
    old = {**headers, "X-LeakSentry-Timestamp": str(int(headers["X-LeakSentry-Timestamp"]) - 600)}
    assert not ns["verify"](b"s3cret", old, req.body)
