"""Every command that README.md, docs/, configs/**/*.md, the configs' comments and the tools' usage lines show
runs: the tool exists and its own parser accepts exactly the arguments shown, the config files named exist, the
make targets are the Makefile's.

A command starts with ``python``, ``mim``, ``make``, ``torchrun``, ``bash`` or ``pytest``, after ``VAR=value``
assignments and a ``cd DIR &&``, and is a line of a fenced code block (bash, sh, shell, console or no language),
an inline code span, or a line indented by four spaces or more in a comment or module docstring of configs/**/*.py,
tools/**/*.py and examples/*.py; a ``# or: COMMAND`` comment after a command is a command too. ``[...]`` marks
optional arguments and ``a|b`` alternatives: each command is checked without its optional arguments, with all of
them, and with every alternative.

A tool's arguments go through its own argparse parser (``parse_args(argv)``, or ``main(argv)`` where a tool has no
``parse_args``), stopped as soon as the parser has accepted them: placeholders such as ``CONFIG``, ``CKPT`` or
``IMAGE`` are fine values for it, while the tool's later checks (does the file exist?) are not run. A flag must be
spelt out in full (argparse would accept an abbreviation). ``mim train|test PACKAGE CONFIG ...`` is parsed by mim's
own command line, and what mim hands on by the package's ``tools/train.py``/``tools/test.py``, the script mim runs.
"""
import argparse
import ast
import contextlib
import functools
import importlib.util
import inspect
import io
import os
import re
import shlex
import sys
import tokenize
from typing import Iterator, List, Optional, Tuple
from unittest import mock

import pytest

from tests.conftest import ROOT, load_script

COMMAND_WORDS = ('python', 'python3', 'mim', 'make', 'torchrun', 'bash', 'pytest')
# Optional `VAR=value` assignments and `cd DIR &&`, then a command word (possibly a path to it, as .venv/bin/python)
# and at least one argument.
COMMAND_START = re.compile(r'^(?:[A-Za-z_]\w*=\S*\s+)*(?:cd\s+\S+\s*&&\s*)?(?:\S*/)?(?:%s)\s+\S'
                           % '|'.join(COMMAND_WORDS))
SHELL_LANGUAGES = {'', 'bash', 'sh', 'shell', 'console'}
FENCE = re.compile(r'^\s*(```+|~~~+)\s*([\w+-]*)')
INLINE_CODE = re.compile(r'(?<!`)`([^`]+)`(?!`)')
OPTIONAL_GROUP = re.compile(r'\[([^\[\]]+)\]')
ALTERNATIVES = re.compile(r'(?<=[^\s|])\|(?=[^\s|])')  # a|b inside a word; a lone | is a pipe
COMMAND_SEPARATORS = {'&&', '||', ';', '|'}
REDIRECTIONS = {'>', '>>', '<', '2>', '&>'}


# ---- Where commands are shown ------------------------------------------------------------------------------------

def _split_comment(line: str) -> List[str]:
    """The commands of a shell line: its command and, for a trailing ``# or: COMMAND``, that alternative."""
    code, comment = (re.split(r'\s+#\s*', line, maxsplit=1) + [''])[:2]
    commands = [code.strip()]
    if comment.startswith('or:'):
        commands.append(comment[len('or:'):].strip())
    return [command for command in commands if COMMAND_START.match(command)]


def markdown_commands(text: str, where: str) -> List[Tuple[str, str]]:
    """``(where:line, command)`` for the commands of a Markdown text: shell lines of its fenced blocks (``\\`` line
    continuations joined, a ``$ `` prompt dropped) and its inline code spans."""
    commands, prose, fence, pending = [], [], None, None
    for number, line in enumerate(text.splitlines(), 1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = (opening.group(1), opening.group(2).lower())
            prose.append('')
            continue
        if fence is not None:
            prose.append('')
            if line.strip().startswith(fence[0]):
                fence = None
            elif fence[1] in SHELL_LANGUAGES:
                start, joined = pending or (number, '')
                joined += line.strip().removeprefix('$ ')
                if joined.endswith('\\'):
                    pending = (start, joined[:-1].rstrip() + ' ')
                    continue
                pending = None
                commands += [(f'{where}:{start}', command) for command in _split_comment(joined)]
            continue
        prose.append(line)
    prose_text = '\n'.join(prose)
    for match in INLINE_CODE.finditer(prose_text):
        span = ' '.join(match.group(1).replace('\\|', '|').split())
        if COMMAND_START.match(span):
            commands.append((f'{where}:{prose_text.count(chr(10), 0, match.start()) + 1}', span))
    return sorted(commands, key=lambda item: int(item[0].rsplit(':', 1)[1]))


def python_file_commands(path: str, where: str) -> List[Tuple[str, str]]:
    """``(where:line, command)`` for the commands in a Python file's comments and module docstring: lines indented
    by four spaces or more there (a code block, as in Markdown), so that prose such as "make sure" is not one."""
    with open(path, encoding='utf-8') as f:
        source = f.read()
    lines = [(token.start[0], token.string[1:]) for token in tokenize.generate_tokens(io.StringIO(source).readline)
             if token.type == tokenize.COMMENT]
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0].value, 'value', None), str):
        lines += [(body[0].lineno + offset, line) for offset, line in enumerate(body[0].value.value.splitlines())]
    return [(f'{where}:{number}', command) for number, line in sorted(lines) if re.match(r'^ {4,}\S', line)
            for command in _split_comment(line)]


def documented_commands() -> List[Tuple[str, str]]:
    """Every command of README.md, docs/**/*.md, configs/**/*.md, and of the comments and module docstrings of
    configs/**/*.py and of the tools and examples (their usage lines, which --help shows)."""
    found = []
    for folder, suffix in (('docs', '.md'), ('configs', '.md'), ('configs', '.py'), ('tools', '.py'),
                           ('examples', '.py')):
        for directory, _, files in sorted(os.walk(os.path.join(ROOT, folder))):
            for name in sorted(files):
                if name.endswith(suffix):
                    found.append(os.path.relpath(os.path.join(directory, name), ROOT))
    commands = []
    for relative in ['README.md'] + found:
        path = os.path.join(ROOT, relative)
        if relative.endswith('.md'):
            commands += markdown_commands(open(path, encoding='utf-8').read(), relative)
        else:
            commands += python_file_commands(path, relative)
    return commands


# ---- What a command must satisfy ---------------------------------------------------------------------------------

def variants(command: str) -> List[str]:
    """The command without its ``[optional]`` arguments, with all of them, and with each ``a|b`` alternative."""
    without, full = command, command
    while OPTIONAL_GROUP.search(full):  # innermost groups first: [--resume [CKPT]]
        without, full = OPTIONAL_GROUP.sub('', without), OPTIONAL_GROUP.sub(lambda match: match.group(1), full)
    words = full.split()
    chosen = [word.split('|')[0] if ALTERNATIVES.search(word) else word for word in words]
    found = [without] if without != full else []
    found.append(' '.join(chosen))
    for index, word in enumerate(words):
        for alternative in ALTERNATIVES.split(word)[1:] if ALTERNATIVES.search(word) else []:
            found.append(' '.join(chosen[:index] + [alternative] + chosen[index + 1:]))
    return list(dict.fromkeys(' '.join(variant.split()) for variant in found))


def simple_commands(command: str) -> Iterator[List[str]]:
    """The words of each simple command of a shell line (split at ``&&``, ``;``, pipes; redirections, ``VAR=value``
    assignments and ``cd`` dropped)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words, skip_next = [], False
    for token in list(lexer) + [';']:
        if skip_next:
            skip_next = False
        elif token in REDIRECTIONS:
            skip_next = True
        elif token in COMMAND_SEPARATORS:
            while words and re.match(r'^[A-Za-z_]\w*=', words[0]):
                words.pop(0)
            if words and words[0] != 'cd':
                yield words
            words = []
        else:
            words.append(token)


class _Accepted(Exception):
    """Raised in place of returning from ``ArgumentParser.parse_args``: the tool's parser accepted the arguments."""

    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__()
        self.parser = parser


def _parse_then_stop(parse_args):
    def parse(self, args=None, namespace=None):
        parse_args(self, args, namespace)
        raise _Accepted(self)
    return parse


def parser_refusal(entry, argv: List[str]) -> Optional[str]:
    """None if the argparse parser that ``entry`` (a tool's ``parse_args`` or ``main``) builds accepts ``argv``,
    every ``--flag`` spelt out in full; else what is wrong. ``entry`` is called with ``argv`` if it takes an
    argument, else with ``sys.argv`` set to it."""
    stderr = io.StringIO()
    call_with_argv = bool(inspect.signature(entry).parameters)
    patches = [mock.patch.object(argparse.ArgumentParser, 'parse_args',
                                 _parse_then_stop(argparse.ArgumentParser.parse_args)),
               mock.patch.object(sys, 'argv', ['tool', *argv])]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        stack.enter_context(contextlib.redirect_stderr(stderr))
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        try:
            entry(argv) if call_with_argv else entry()
        except _Accepted as accepted:
            flags = [word.split('=', 1)[0] for word in argv if word.startswith('--') and word != '--']
            abbreviated = [flag for flag in flags if flag not in accepted.parser._option_string_actions]
            return f'abbreviated flags {abbreviated}' if abbreviated else None
        except SystemExit as exit:
            return None if exit.code == 0 else f'refused (exit {exit.code}): {stderr.getvalue().strip()[-600:]}'
    return 'the tool returned without parsing its arguments'


@functools.lru_cache(maxsize=None)
def _tool_entry(path: str):
    """The ``parse_args`` (else ``main``) of a script (relative to the repository, or absolute)."""
    module = load_script(path)
    return getattr(module, 'parse_args', None) or module.main


def _package_tool(package: str, tool: str) -> str:
    """An OpenMMLab package's ``tools/<tool>.py``, the script that ``mim train|test PACKAGE`` runs."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise AssertionError(f'{package} is not installed')
    return os.path.join(list(spec.submodule_search_locations)[0], '.mim', 'tools', f'{tool}.py')


def _named_files_problems(words: List[str]) -> List[str]:
    return [f'{word} does not exist' for word in words
            if word.startswith('configs/') and not os.path.isfile(os.path.join(ROOT, word))]


def _python_problems(arguments: List[str]) -> List[str]:
    if arguments[:1] == ['-m']:
        if len(arguments) < 2 or importlib.util.find_spec(arguments[1]) is None:
            return [f'python -m: no module {arguments[1:2]}']
        return _pytest_problems(arguments[2:]) if arguments[1] == 'pytest' else []
    script = arguments[0] if arguments else ''
    if not script.startswith(('tools/', 'examples/')) or not script.endswith('.py'):
        return [f'python {script}: not a script of tools/ or examples/']
    if not os.path.isfile(os.path.join(ROOT, script)):
        return [f'{script} does not exist']
    refusal = parser_refusal(_tool_entry(script), arguments[1:])
    return _named_files_problems(arguments[1:]) + ([f'{script}: {refusal}'] if refusal else [])


def _mim_problems(arguments: List[str]) -> List[str]:
    import click

    # mim.commands re-exports functions named train and test, which shadow their modules.
    commands = {name: importlib.import_module(f'mim.commands.{name}').cli for name in ('train', 'test')}
    if arguments[:1] not in ([name] for name in commands):
        return [f'mim {" ".join(arguments[:1])}: only mim train and mim test are checked']
    command = commands[arguments[0]]
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            params = command.make_context(f'mim {arguments[0]}', list(arguments[1:])).params
    except click.ClickException as error:
        return [f'mim {arguments[0]} refuses its arguments: {error.format_message()}']
    handed_on = [params['config'], *([params['checkpoint']] if params.get('checkpoint') else []),
                 *params['other_args']]
    if params['launcher'] != 'none':
        handed_on += ['--launcher', params['launcher']]
    refusal = parser_refusal(_tool_entry(_package_tool(params['package'], arguments[0])), handed_on)
    return _named_files_problems([params['config']]) + (
        [f'{params["package"]} tools/{arguments[0]}.py (through mim): {refusal}'] if refusal else [])


def _make_problems(targets: List[str]) -> List[str]:
    with open(os.path.join(ROOT, 'Makefile')) as f:
        defined = set(re.findall(r'^([\w.-]+)\s*:(?!=)', f.read(), re.MULTILINE))
    return [f'make {target}: no such target in the Makefile' for target in targets
            if not target.startswith('-') and '=' not in target and target not in defined]


def _pytest_problems(arguments: List[str]) -> List[str]:
    paths = [word.split('::')[0] for word in arguments if word.startswith('tests')]
    return [f'pytest: {path} does not exist' for path in paths if not os.path.exists(os.path.join(ROOT, path))]


def command_problems(command: str) -> List[str]:
    """What is wrong with a documented command, each of its variants checked; empty if nothing."""
    problems = []
    for variant in variants(command):
        if '...' in variant.split():
            problems.append(f'{variant!r}: "..." stands for arguments that cannot be checked; write them out')
            continue
        for words in simple_commands(variant):
            program, arguments = os.path.basename(words[0]), words[1:]
            if program in ('python', 'python3'):
                found = _python_problems(arguments)
            elif program == 'torchrun':
                scripts = [word for word in arguments if word.endswith('.py')]
                found = (_python_problems(arguments[arguments.index(scripts[0]):]) if scripts
                         else ['torchrun: no script'])
            elif program == 'mim':
                found = _mim_problems(arguments)
            elif program == 'make':
                found = _make_problems(arguments)
            elif program == 'bash':
                found = [f'{word} does not exist' for word in arguments[:1]
                         if not os.path.isfile(os.path.join(ROOT, word))]
            elif program == 'pytest':
                found = _pytest_problems(arguments)
            else:
                found = []
            problems += [f'{variant!r}: {problem}' for problem in found]
    return problems


# ---- The tests ---------------------------------------------------------------------------------------------------

DOCUMENTED = documented_commands()


def test_the_documentation_shows_commands_of_every_kind_checked():
    programs = {os.path.basename(command.split()[0]) for _, command in DOCUMENTED}
    assert {'python', 'mim', 'make', 'torchrun', 'bash'} <= programs, programs
    for folder in ('configs/', 'tools/', 'examples/'):
        assert any(where.startswith(folder) and where.split(':')[0].endswith('.py') for where, _ in DOCUMENTED)


@pytest.mark.parametrize('where, command', DOCUMENTED, ids=[where for where, _ in DOCUMENTED])
def test_documented_command_runs_a_tool_that_accepts_its_arguments(where, command):
    assert command_problems(command) == []


EXAMPLE_MARKDOWN = '''Train it:

```bash
python tools/train.py CONFIG \\
    --work-dir work_dirs/x   # or: mim train mmyolo CONFIG
pip install something
```

```python
python = 'not a shell command'
```

Then `make test-fast` and `python tools/test.py CONFIG CKPT`; the table's
| `python tools/analysis_tools/benchmark_op.py [--device cpu\\|cuda]` | ... |
'''


def test_extractor_finds_fenced_continued_alternative_and_inline_commands():
    assert markdown_commands(EXAMPLE_MARKDOWN, 'x.md') == [
        ('x.md:4', 'python tools/train.py CONFIG --work-dir work_dirs/x'),
        ('x.md:4', 'mim train mmyolo CONFIG'),
        ('x.md:13', 'make test-fast'),
        ('x.md:13', 'python tools/test.py CONFIG CKPT'),
        ('x.md:14', 'python tools/analysis_tools/benchmark_op.py [--device cpu|cuda]'),
    ]


def test_config_comments_are_read_for_commands(tmp_path):
    config = tmp_path / 'config.py'
    config.write_text("# Train it:\n#     python tools/train.py THIS_CONFIG   # or: mim train mmyolo THIS_CONFIG\n"
                      "_base_ = './other.py'  # make sure it exists\nmodel = dict()\n")
    assert python_file_commands(str(config), 'c.py') == [
        ('c.py:2', 'python tools/train.py THIS_CONFIG'), ('c.py:2', 'mim train mmyolo THIS_CONFIG')]


def test_optional_arguments_and_alternatives_are_all_checked():
    assert variants('python t.py A [--device cpu|cuda] [--json PATH]') == [
        'python t.py A', 'python t.py A --device cpu --json PATH', 'python t.py A --device cuda --json PATH']
    assert variants('python t.py [--resume [CKPT]]') == ['python t.py', 'python t.py --resume CKPT']


def test_placeholders_pass_the_parser_and_a_shell_prefix_is_understood():
    assert command_problems('python tools/image_demo.py CONFIG CKPT IMAGE_FOLDER --out results/') == []
    assert command_problems('cd my_project && MAX_JOBS=2 make test-fast') == []


@pytest.mark.parametrize('command, problem', [
    ('python tools/image_demo.py THIS_CONFIG CHECKPOINT my_images/ --out-dir results/',
     'unrecognized arguments: --out-dir'),
    ('python tools/image_demo.py CONFIG CKPT IMAGE --score 0.5', "abbreviated flags ['--score']"),
    ('python tools/deployment/test_onnx.py CONFIG model.onnx --runtime tensorrt', "invalid choice: 'tensorrt'"),
    ('python tools/analysis_tools/benchmark_op.py [--device cpu|gpu]', "invalid choice: 'gpu'"),
    ('python tools/not_a_tool.py CONFIG', 'tools/not_a_tool.py does not exist'),
    ('python tools/test.py configs/yolov8_q_dcnv3_coco.py CKPT', 'configs/yolov8_q_dcnv3_coco.py does not exist'),
    ('make tests', 'make tests: no such target'),
    ('mim train mmyolo configs/yolov8_s_dcnv3_coco.py --work_dir out', 'unrecognized arguments: --work_dir'),
    ('mim train mmyolo configs/yolov8_s_dcnv3_coco.py --gpus two', "'two' is not a valid integer"),
    ('mim train mmyolo ...', 'cannot be checked'),
    ('bash tools/gpu_test.sh', 'tools/gpu_test.sh does not exist'),
])
def test_a_wrong_command_is_reported(command, problem):
    problems = command_problems(command)
    assert problems and any(problem in found for found in problems), problems
