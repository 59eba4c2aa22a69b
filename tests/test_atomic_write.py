"""atomic_path: whole files or none; a truncated download never lands."""
import http.server
import threading

import pytest

from spacy_elmo import loaders
from spacy_elmo.atomic_write import atomic_path


def test_success_renames_and_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_path(target, fsync=True) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


class _Truncating(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)  # then the connection closes

    def log_message(self, *args):
        pass


def test_a_truncated_download_is_an_error_and_leaves_no_file(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Truncating)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        target = tmp_path / "weights.hdf5"
        with pytest.raises(OSError, match="stopped after 10 of 1,000 bytes"):
            loaders.download_file(f"http://127.0.0.1:{server.server_port}/w", target, timeout=10)
        assert not list(tmp_path.iterdir())
    finally:
        thread.join(timeout=10)
        server.server_close()


class _Stalling(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)
        self.wfile.flush()
        self.server.release.wait(10)  # then nothing more for longer than the client waits

    def log_message(self, *args):
        pass


def test_a_stalled_download_times_out_and_leaves_no_file(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Stalling)
    server.release = threading.Event()
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        with pytest.raises(OSError, match="timed out"):
            loaders.download_file(f"http://127.0.0.1:{server.server_port}/w", tmp_path / "weights.hdf5", timeout=0.5)
        assert not list(tmp_path.iterdir())
    finally:
        server.release.set()
        thread.join(timeout=10)
        server.server_close()
