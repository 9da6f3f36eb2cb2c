"""The colorama names smuggler uses, as plain ANSI codes (it strips them with --no-color)."""


class Fore:
    RED = "\x1b[31m"
    GREEN = "\x1b[32m"
    YELLOW = "\x1b[33m"
    MAGENTA = "\x1b[35m"
    CYAN = "\x1b[36m"
    WHITE = "\x1b[37m"
    BLUE = "\x1b[34m"
    RESET = "\x1b[39m"


class Style:
    BRIGHT = "\x1b[1m"
    NORMAL = "\x1b[22m"
    RESET_ALL = "\x1b[0m"
