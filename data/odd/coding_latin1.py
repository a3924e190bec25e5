# -*- coding: latin-1 -*-
"""A PEP 263 coding line: pyast parses this Latin-1 source; wordfreq cannot decode it."""

GREETING = 'Olá, señor'


def greet(name):
    if name:
        return f'{GREETING} {name}'
    return GREETING
