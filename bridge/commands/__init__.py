"""The CLI's subcommands, one module each, imported only when used (so ``daw-bridge send`` starts fast)."""


def print_answer(command: str, reply, port: int, text) -> int:
    """Print the daemon's answer to a CLI command: ``text()`` on success (exit 0), the daemon's one-line reason on
    an error reply (exit 2), or that no daemon answered (exit 1)."""
    if reply is None:
        print(f"no daemon answered on 127.0.0.1:{port}: start it with 'daw-bridge serve'")
        return 1
    if reply.name == "error":
        print(f"daw-bridge {command}: {reply.args[-1]}")
        return 2
    print(text())
    return 0
