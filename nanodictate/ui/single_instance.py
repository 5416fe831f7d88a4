"""One app per user: a second launch, or `nanodictate toggle|start|stop|cancel`, hands its
command to the running instance over a local socket (QLocalServer) and exits.

The socket name includes the user and a hash of the settings folder, so two users — or two
test runs with their own ``NANODICTATE_CONFIG_DIR`` — never talk to each other's instance.
One line each way: the command, then "ok" or "unknown".
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from nanodictate.settings import config_dir

log = logging.getLogger(__name__)

COMMANDS = ("toggle", "start", "stop", "cancel", "show")
_TIMEOUT_MS = 2000


def server_name() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: the folder hash still separates users
        user = "user"
    digest = hashlib.sha1(str(config_dir().resolve()).encode()).hexdigest()[:10]
    return f"nanodictate-{user}-{digest}"


def send_command(
    command: str, *, name: str | None = None, timeout_ms: int = _TIMEOUT_MS
) -> str | None:
    """Send a command to the running instance: its answer ("ok"/"unknown"), None if none runs."""
    if QCoreApplication.instance() is None:
        # QLocalSocket's blocking calls need an application object, not a running loop.
        _app = QCoreApplication([])
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(timeout_ms):
        return None
    socket.write(command.encode() + b"\n")
    socket.waitForBytesWritten(timeout_ms)
    answer = b""
    while True:
        # Read what is buffered first: waitForReadyRead waits for *new* data only.
        answer += bytes(socket.readAll().data())
        if b"\n" in answer or not socket.waitForReadyRead(timeout_ms):
            answer += bytes(socket.readAll().data())
            break
    socket.disconnectFromServer()
    return answer.decode(errors="replace").strip() or "no answer"


class InstanceServer(QObject):
    """Listens for commands; `handler(command) -> bool` runs on the GUI thread."""

    command_received = Signal(str)

    def __init__(self, handler: Callable[[str], bool], *, name: str | None = None) -> None:
        super().__init__()
        self.name = name or server_name()
        self._handler = handler
        self._server = QLocalServer(self)
        # Only this user may connect (the socket file gets mode 0700 on Unix).
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Start listening; False when another live instance already does.

        Asking first matters: with UserAccessOption, Qt creates the socket elsewhere and
        renames it over an existing one, so a second listen() "succeeds" and steals it.
        """
        if send_command("ping", name=self.name, timeout_ms=500) is not None:
            return False
        # Nobody answers: a socket file left by a crashed instance, if any, is stale.
        QLocalServer.removeServer(self.name)
        return self._server.listen(self.name)

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            connection = self._server.nextPendingConnection()
            buffer = bytearray()

            def read(connection: QLocalSocket = connection, buffer: bytearray = buffer) -> None:
                buffer.extend(bytes(connection.readAll().data()))
                if b"\n" not in buffer:
                    return
                command = bytes(buffer).split(b"\n", 1)[0].decode(errors="replace").strip()
                known = command == "ping" or self._dispatch(command)
                connection.write(b"ok\n" if known else b"unknown\n")
                connection.flush()
                connection.disconnectFromServer()

            connection.readyRead.connect(read)
            connection.disconnected.connect(connection.deleteLater)
            if connection.bytesAvailable():
                read()

    def _dispatch(self, command: str) -> bool:
        if command not in COMMANDS:
            log.warning("Unknown command from another instance: %r", command)
            return False
        log.info("Command from another instance: %s", command)
        self.command_received.emit(command)
        return bool(self._handler(command))

    def close(self) -> None:
        self._server.close()
