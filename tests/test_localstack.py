"""Pieces of `supactl dev` that need no running stack (the whole stack: test_e2e_call.py)."""

from __future__ import annotations

import socket

import pytest

from supactl.localstack import DevSettings, DevStack, DevStackError, read_dev_env, readable_function_log


def test_function_json_log_lines_become_one_readable_line():
    line = ('{"ts":"2026-11-25T10:00:01.234Z","level":"warn","event":"model_closed",'
            '"call_sid":"CA0123456789abcdef0123456789abcdef","code":3000}')
    assert readable_function_log(line) == "10:00:01 WARN model_closed [abcdef] code=3000"
    assert readable_function_log("Listening on http://0.0.0.0:54321/") == "Listening on http://0.0.0.0:54321/"


def test_dev_refuses_a_busy_port_before_starting_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = DevStack(DevSettings(project_dir=tmp_path, port=port, log=lambda line: None))
        with pytest.raises(DevStackError, match=f"port {port}") as refused:
            stack.start()
    assert "--port" in refused.value.hint
    assert not (tmp_path / ".supactl").exists()


def test_dev_env_is_empty_before_the_first_run(tmp_path):
    assert read_dev_env(tmp_path) == {}
