"""The Jinja sandbox stands up to the known escapes: attribute walks to `__globals__`,
`__subclasses__`, `__builtins__`, reading files, importing modules. Each is exit 2 (bad
input) with a message, and none runs anything: a canary file that a successful escape would
create never appears, and nothing an escape would reach shows up in the message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bspec.errors import InputError
from bspec.spec import load

CANARY = "/tmp/bspec-sandbox-canary"
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ [].__class__.__base__.__subclasses__() }}",
    "{{ lipsum.__globals__['os'].system('touch " + CANARY + "') }}",
    "{{ lipsum.__globals__.os.popen('id').read() }}",
    "{{ cycler.__init__.__globals__.os.system('touch " + CANARY + "') }}",
    "{{ joiner.__init__.__globals__.__builtins__.open('/etc/passwd').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ vars.__class__.__init__.__globals__ }}",
    "{{ item.__class__.__mro__ }}",
    "{{ batchid.__globals__ }}",
    "{{ ('a' | batchid).__class__.__mro__[1].__subclasses__() }}",
    "{{ range.__self__ }}",
    "{{ config }}",
    "{{ request }}",
    "{{ ''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__ }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ (''|attr('\\x5f\\x5fclass\\x5f\\x5f')) }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ '%s'.format.__globals__ }}",
    "{{ vars.update({'x': 1}) }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
    "{% import 'os' as os %}{{ os.system('id') }}",
    "{% extends '/etc/passwd' %}",
    "{% from '/etc/hostname' import x %}",
    "{{ range(10**9) | list | length }}",
    "{{ get_flashed_messages.__globals__ }}",
    "{{ url_for.__globals__ }}",
    "{{ __import__('os').system('touch " + CANARY + "') }}",
    "{{ open('/etc/passwd').read() }}",
    "{{ eval('1') }}",
]


def spec_with(folder: Path, template: str) -> Path:
    spec = {
        "apiVersion": "bspec/v1", "name": "sandbox", "vars": {"x": 1},
        "pool": {"id": "p", "vmSize": "standard_d2s_v3",
                 "image": {"publisher": "canonical", "offer": "o", "sku": "s",
                           "nodeAgentSku": "batch.node.ubuntu 22.04"}},
        "jobs": [{"id": "j", "tasks": [
            {"foreach": {"list": ["a"]}, "id": "t{{ index }}", "commandLine": f"echo {template}"}]}],
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("template", ESCAPES)
def test_known_escapes_are_refused(tmp_path: Path, template: str) -> None:
    Path(CANARY).unlink(missing_ok=True)
    spec = spec_with(tmp_path, template)
    with pytest.raises(InputError) as caught:
        load(spec)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "template" in message or "unsafe" in message or "undefined" in message, message
    for leaked in ("root:", "<module", "<function", "Popen", "uid="):
        assert leaked not in message, message
    assert not Path(CANARY).exists()
