"""Pieces of `supactl dev` that need no running stack (the whole stack: test_e2e_call.py)."""

from __future__ import annotations

import socket

import pytest

from supactl.dev_stack.stack import DevSettings, DevStack, DevStackError, read_dev_env, readable_function_log


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


def test_a_port_held_only_by_time_wait_sockets_counts_as_free():
    """Restarting `supactl dev` within a minute used to fail: the old connections sat in TIME_WAIT."""
    from supactl.dev_stack.stack import _port_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    assert not _port_free(port), "a live listener holds the port"
    accepted.close()  # the server side closes first: its end of the connection enters TIME_WAIT
    client.close()
    listener.close()
    with open("/proc/net/tcp") as table:
        states = [line.split()[3] for line in table.readlines()[1:] if line.split()[1].endswith(f":{port:04X}")]
    assert "06" in states, "the test needs a TIME_WAIT socket on the port"
    assert _port_free(port)
