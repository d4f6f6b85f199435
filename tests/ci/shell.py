"""The commands a bash script calls, read from its text (no shell runs it).

A small reader for the bash the CI scripts are written in: simple commands joined by ``;``,
``|``, ``&&``, ``||`` and newlines, ``if``/``while``/``for`` blocks, functions and ``$( ... )``
substitutions (arithmetic ``$(( ))`` included). It names the first word of each command,
skipping assignments, keywords, builtins, the script's own functions and the repository's
``.ci/`` scripts (checked on their own). ``case`` is not read: the scripts do not use it.
"""

from __future__ import annotations

import re
import shlex

KEYWORDS = {"if", "then", "elif", "else", "fi", "do", "done", "while", "until", "!", "{", "}"}
BUILTINS = {
    ".", ":", "[", "[[", "break", "cd", "command", "continue", "declare", "echo", "eval", "exit",
    "export", "false", "local", "printf", "pwd", "read", "return", "set", "shift", "source", "test",
    "trap", "true", "type", "unset", "wait",
}  # fmt: skip
_SEPARATORS = {";", "|", "||", "&&", "&", "(", ")", "\n", ";;", "|&"}
_FUNCTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\(\)", re.M)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_REDIRECT_TO_FD = re.compile(r"\d*>&\d+|&>")


def split_substitutions(text: str) -> tuple[str, list[str]]:
    """``text`` with each ``$( ... )`` replaced by a placeholder word, and the command bodies."""
    out, bodies, i = [], [], 0
    while (start := text.find("$(", i)) != -1:
        out.append(text[i:start])
        depth, j, quote = 1, start + 2, None
        while j < len(text) and depth:
            ch = text[j]
            if quote:
                quote = None if ch == quote else quote
            elif ch == "'":
                quote = ch
            elif ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            j += 1
        body = text[start + 2 : j - 1]
        if body.startswith("("):  # $(( arithmetic )): only its own substitutions run commands
            bodies += split_substitutions(body)[1]
        else:
            bodies.append(body)
        out.append("$SUBSTITUTED")
        i = j
    out.append(text[i:])
    return "".join(out), bodies


def _words(text: str) -> list[str]:
    lexer = shlex.shlex(
        _REDIRECT_TO_FD.sub(" ", text.replace("\\\n", " ")), posix=True, punctuation_chars=";&|()"
    )
    lexer.whitespace = " \t\r"
    lexer.commenters = "#"
    lexer.wordchars += "$-./:=@{}[]%+,~*?!<>^"
    return list(lexer)


def commands(text: str, functions: frozenset[str] = frozenset()) -> set[str]:
    """Every external command ``text`` calls, by the name it is called with."""
    functions = functions | set(_FUNCTION.findall(text))
    outer, bodies = split_substitutions(text)
    found: set[str] = set()
    for body in bodies:
        found |= commands(body, frozenset(functions))
    expect_command, in_for_header, in_array = True, False, False
    words = _words(outer)
    for i, word in enumerate(words):
        if in_for_header:  # for NAME in WORDS; do
            in_for_header = word != "do"
            continue
        if in_array:  # NAME=( WORDS )
            in_array = word != ")"
            continue
        if word.endswith("=") and _ASSIGNMENT.match(word) and words[i + 1 : i + 2] == ["("]:
            in_array = True
        elif word in _SEPARATORS or set(word) <= set(";&|()"):
            expect_command = True
        elif not expect_command:
            continue
        elif word == "for":
            in_for_header = True
        elif word in KEYWORDS or _ASSIGNMENT.match(word):
            continue
        else:
            expect_command = False
            if word in BUILTINS or word in functions or word.startswith(("$", ".ci/")):
                continue
            found.add(word)
    return found
