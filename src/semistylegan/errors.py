"""Errors a user can cause. The CLI prints their message as one line and exits with status 2."""


class UserError(Exception):
    """Bad input from the user: a path, a file, an option value. Message is one clear line."""
