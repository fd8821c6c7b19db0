"""Errors that reach the user as one sentence, without a traceback (STYLE 11, 12)."""


class UserError(Exception):
    """Bad input from the user: a file, an argument or a checkpoint that breaks a rule.

    The CLI prints the message as one sentence and exits with status 2.
    """
