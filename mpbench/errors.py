"""The one user-error type. The CLI turns it into a one-line message and exit code 2."""


class UserError(Exception):
    """A mistake the user can fix (bad suite, missing file, corrupt results).

    The message names what is wrong and how to fix it; it is printed without a traceback.
    """

    exit_code = 2


