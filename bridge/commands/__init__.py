"""The CLI's subcommands, one module each, imported only when used (so ``daw-bridge send`` starts fast)."""
