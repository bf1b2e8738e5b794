"""spec/modelfile.py: Ollama's Modelfile syntax, case by case, and format/parse round trips.

Expected values follow Ollama's ``parser/parser.go`` and the cases in ``parser_test.go``.
"""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from mdl.spec.errors import ModelfileError
from mdl.spec.modelfile import (
    ROLES,
    Instruction,
    Modelfile,
    decode_modelfile,
    format_modelfile,
    parse_modelfile,
)

Q3 = '"' * 3  # a Modelfile triple quote
ROLE_ERROR = 'MESSAGE role must be "system", "user" or "assistant"'


def only(text: str) -> Instruction:
    """The one instruction after ``FROM base`` in ``text``."""
    instructions = parse_modelfile("FROM base\n" + text).instructions
    assert len(instructions) == 2
    return instructions[1]


def error(text: str, path: str = "Modelfile") -> str:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text, path)
    assert info.value.path == path
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "command", "key", "value"),
    [
        ("FROM llama3:8b", "from", "", "llama3:8b"),
        ("PARAMETER temperature 0.7", "parameter", "temperature", "0.7"),
        ("TEMPLATE {{ .Prompt }}", "template", "", "{{ .Prompt }}"),
        ("SYSTEM You are terse.", "system", "", "You are terse."),
        ("ADAPTER ./lora.gguf", "adapter", "", "./lora.gguf"),
        ("LICENSE MIT", "license", "", "MIT"),
        ("MESSAGE user Hey there!", "message", "user", "Hey there!"),
        ("MESSAGE assistant Hi: how are you?", "message", "assistant", "Hi: how are you?"),
        ("MESSAGE system Be brief.", "message", "system", "Be brief."),
        ("REQUIRES 0.14.0", "requires", "", "0.14.0"),
        ("DRAFT ./assistant", "draft", "", "./assistant"),
        ("RENDERER qwen3", "renderer", "", "qwen3"),
        ("PARSER qwen3", "parser", "", "qwen3"),
        ("system lower case", "system", "", "lower case"),
        ("SyStEm mixed case", "system", "", "mixed case"),
        ("parameter top_k 1", "parameter", "top_k", "1"),
        ("\tSYSTEM\tindented with tabs\t", "system", "", "indented with tabs"),
        ("SYSTEM    many   inner   spaces   ", "system", "", "many   inner   spaces"),
        ("PARAMETER   top_k    1", "parameter", "top_k", "1"),
    ],
)
def test_every_instruction(text: str, command: str, key: str, value: str):
    assert only(text) == Instruction(command, value, key=key)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"{Q3}\nThis is a\nmultiline system.\n{Q3}", "\nThis is a\nmultiline system.\n"),
        (f"{Q3}This is a\nmultiline system.{Q3}", "This is a\nmultiline system."),
        (f"{Q3}one line{Q3}", "one line"),
        (f'{Q3}with "quotes" inside{Q3}', 'with "quotes" inside'),
        (f'{Q3}\nsay "Hello!".\n{Q3}', '\nsay "Hello!".\n'),
        (f"""{Q3}''"'""'""'"'''''""'""'{Q3}""", """''"'""'""'"'''''""'""'"""),
        (Q3 * 2, ""),
        ('""', ""),
        ('"\'"', "'"),
        ('"     model 1"', "     model 1"),
        ('"MIT       "', "MIT       "),
        (f"{Q3}   padded   {Q3}", "   padded   "),
        ('"say "hi""', 'say "hi"'),
        ('say "hi"', 'say "hi"'),
        ('"a\nb"', "a\nb"),  # Ollama lets a "…" value span lines too
        (f"{Q3}\n    indented\n\tand tabbed\n{Q3}", "\n    indented\n\tand tabbed\n"),
        (f"{Q3}x{Q3}   \t", "x"),
        (f"{Q3}a\n# not a comment\nb{Q3}", "a\n# not a comment\nb"),
        ('"# quoted"', "# quoted"),
        ("text # not a comment", "text # not a comment"),
        (
            f"{Q3}a{Q3} b\nc{Q3}",
            f"a{Q3} b\nc",
        ),  # text after the closing quotes keeps the value open
        ('"a" b\nc"', 'a" b\nc'),
        (f"{Q3}a\r\nb{Q3}\r\n", "a\r\nb"),  # line breaks inside a value are kept as written
        (f"{Q3}a\rb{Q3}", "a\rb"),
        ("\u4f60\u597d\U0001f44b", "\u4f60\u597d\U0001f44b"),
        ("zero\u200bwidth\u00a0and\x07bell\ufeff", "zerowidthandbell"),  # dropped, as in Ollama
        ('\\"no\\" escapes\\n', '\\"no\\" escapes\\n'),
    ],
)
def test_values_and_quoting(text: str, value: str):
    assert only("SYSTEM " + text).value == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("### User:", "### User:"),
        ("### User: ", "### User:"),
        ('"### User:"', "### User:"),
        ('"### User: "', "### User: "),
        (f"{Q3}### User:{Q3}", "### User:"),
        (f"{Q3}### User:\n{Q3}", "### User:\n"),
        ("<|endoftext|>", "<|endoftext|>"),
        ("</s>", "</s>"),
    ],
)
def test_stop_values_from_ollamas_tests(text: str, value: str):
    assert only("PARAMETER stop " + text).param == value


def test_line_numbers_count_comments_blank_lines_multiline_values_and_crlf_once():
    text = (
        "# a comment\r\n"
        "\r\n"
        "FROM base\r\n"
        f"TEMPLATE {Q3}\r\n"
        "{{ .Prompt }}\r\n"
        f"{Q3}\r\n"
        "  # indented comment\r\n"
        "PARAMETER top_k 1\r\n"
        "ADAPTER a.gguf\r"
        "ADAPTER b.gguf\n"
        "DRAFT d.gguf"
    )
    mf = parse_modelfile(text)
    assert [(i.command, i.line) for i in mf.instructions] == [
        ("from", 3),
        ("template", 4),
        ("parameter", 8),
        ("adapter", 9),
        ("adapter", 10),
        ("draft", 11),
    ]
    assert mf.template == "\r\n{{ .Prompt }}\r\n"


def test_accessors():
    mf = parse_modelfile(
        "FROM first\n"
        "FROM second\n"
        "TEMPLATE t1\n"
        "TEMPLATE t2\n"
        "SYSTEM s\n"
        "ADAPTER a1\n"
        "ADAPTER a2\n"
        "LICENSE MIT\n"
        "LICENSE Apache\n"
        "MESSAGE user hi\n"
        "MESSAGE assistant hello\n"
        "PARAMETER stop x\n"
        "PARAMETER temperature 0.5\n"
        "PARAMETER mirostat 2\n"
        "PARAMETER stop y\n"
        "REQUIRES 0.1.0\n"
        "DRAFT d\n"
        "RENDERER r\n"
        "PARSER p\n",
        "dir/Modelfile",
    )
    assert (mf.from_.value, mf.from_.line) == ("second", 2)
    assert mf.template == "t2"
    assert mf.system == "s"
    assert [(a.value, a.line) for a in mf.adapters] == [("a1", 6), ("a2", 7)]
    assert mf.licenses == ["MIT", "Apache"]
    assert mf.messages == [("user", "hi"), ("assistant", "hello")]
    assert mf.parameters == [("stop", "x"), ("temperature", 0.5), ("stop", "y")]
    assert [(i.key, i.line) for i in mf.deprecated_parameters] == [("mirostat", 14)]
    assert mf.requires == "0.1.0"
    assert mf.draft is not None
    assert (mf.draft.value, mf.draft.line) == ("d", 17)
    assert (mf.renderer, mf.parser) == ("r", "p")
    assert mf.path == "dir/Modelfile"


def test_absent_instructions():
    mf = parse_modelfile("FROM base")
    assert (mf.template, mf.system, mf.requires, mf.renderer, mf.parser, mf.draft) == (None,) * 6
    assert (mf.adapters, mf.licenses, mf.messages, mf.parameters) == ([], [], [], [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "models/Modelfile:1: no FROM line"),
        ("# only a comment\n\n", "models/Modelfile:1: no FROM line"),
        ("PARAMETER top_k 1\nSYSTEM s\n", "models/Modelfile:1: no FROM line"),
        ("FROM base\n\nFORM x\n", 'models/Modelfile:3: unknown instruction "FORM"'),
        ("FROM:latest\n", 'models/Modelfile:1: unknown instruction "FROM:latest"'),
        ("FROM base\nÉTÉ x\n", 'models/Modelfile:2: unknown instruction "ÉTÉ"'),
        ("FROM\n", "models/Modelfile:1: missing value for FROM"),
        ("FROM   \t\n", "models/Modelfile:1: missing value for FROM"),
        ("FROM base\nSYSTEM", "models/Modelfile:2: missing value for SYSTEM"),
        ('FROM ""\n', "models/Modelfile:1: empty FROM"),
        (f"FROM {Q3 * 2}\n", "models/Modelfile:1: empty FROM"),
        ('FROM base\nADAPTER ""\n', "models/Modelfile:2: empty ADAPTER"),
        ('FROM base\nDRAFT ""\n', "models/Modelfile:2: empty DRAFT"),
        (
            f"FROM base\nSYSTEM {Q3}\nnever closed\nPARAMETER top_k 1\n",
            f"models/Modelfile:2: unterminated {Q3}: no line ends with the closing {Q3}",
        ),
        (
            f"FROM base\nSYSTEM {Q3}almost{Q3[:2]}\n",
            f"models/Modelfile:2: unterminated {Q3}: no line ends with the closing {Q3}",
        ),
        (
            f"FROM base\r\n\r\nSYSTEM {Q3}a{Q3} trailing\r\nPARAMETER top_k 1\r\n",
            f"models/Modelfile:3: unterminated {Q3}: no line ends with the closing {Q3}",
        ),
        (
            'FROM base\nSYSTEM "\n',
            'models/Modelfile:2: unterminated ": no line ends with the closing "',
        ),
        (
            'FROM base\nSYSTEM "a" b\nLICENSE MIT\n',
            'models/Modelfile:2: unterminated ": no line ends with the closing "',
        ),
        (
            "FROM base\nMESSAGE badguy I'm a bad guy!\n",
            f'models/Modelfile:2: {ROLE_ERROR}, not "badguy"',
        ),
        (
            "FROM base\nMESSAGE User hi\n",
            f'models/Modelfile:2: {ROLE_ERROR}, not "User"',
        ),
        (
            "FROM base\nMESSAGE user: hi\n",
            f'models/Modelfile:2: {ROLE_ERROR}, not "user:"',
        ),
        ("FROM base\nMESSAGE system\n", "models/Modelfile:2: missing value for MESSAGE system"),
        ("FROM base\nMESSAGE\n", "models/Modelfile:2: missing value for MESSAGE"),
        ("FROM base\nPARAMETER\n", "models/Modelfile:2: missing value for PARAMETER"),
        ("FROM base\nPARAMETER param1\n", "models/Modelfile:2: missing value for PARAMETER param1"),
        ("FROM base\nPARAMETER top_k   ", "models/Modelfile:2: missing value for PARAMETER top_k"),
        ("FROM base\nPARAMETER param1 value1\n", 'models/Modelfile:2: unknown parameter "param1"'),
        ("FROM base\nPARAMETER top-k 1\n", 'models/Modelfile:2: unknown parameter "top-k"'),
        (
            "FROM base\nPARAMETER temperature abc\n",
            'models/Modelfile:2: invalid float value "abc" for parameter temperature',
        ),
        (
            "FROM base\nPARAMETER num_ctx 1.5\n",
            'models/Modelfile:2: invalid integer value "1.5" for parameter num_ctx',
        ),
        (
            "FROM base\n\nPARAMETER use_mmap maybe\n",
            'models/Modelfile:3: invalid boolean value "maybe" for parameter use_mmap',
        ),
        (
            "FROM base\nPARAMETER typical_p 0.9\n",
            "models/Modelfile:2: typical_p is deprecated and cannot be set as a model parameter; "
            "pass it as a request option instead",
        ),
    ],
)
def test_errors_name_the_file_and_line(text: str, message: str):
    assert error(text, "models/Modelfile") == message


def test_an_error_is_a_modelfile_error_with_its_parts():
    with pytest.raises(ModelfileError) as info:
        parse_modelfile("FROM base\nFORM x")
    assert (info.value.path, info.value.line, info.value.message) == (
        "Modelfile",
        2,
        'unknown instruction "FORM"',
    )


UTF16_TEXT = "FROM bob\nPARAMETER num_ctx 4096\nSYSTEM \u4f60\u597d\U0001f44b\n"


@pytest.mark.parametrize(
    "data",
    [
        UTF16_TEXT.encode(),
        codecs.BOM_UTF8 + UTF16_TEXT.encode(),
        codecs.BOM_UTF16_LE + UTF16_TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + UTF16_TEXT.encode("utf-16-be"),
    ],
    ids=["utf-8", "utf-8 with BOM", "utf-16 le", "utf-16 be"],
)
def test_encodings(data: bytes):
    mf = parse_modelfile(decode_modelfile(data, "Modelfile"))
    assert mf.from_.value == "bob"
    assert mf.parameters == [("num_ctx", 4096)]
    assert mf.system == "\u4f60\u597d\U0001f44b"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "m:1: not valid UTF-8: invalid start byte"),
        (
            b"FROM x\r\nSYSTEM a\r\nSYSTEM \xe4\xbd\n",
            "m:3: not valid UTF-8: invalid continuation byte",
        ),
        (codecs.BOM_UTF16_LE + "FROM x\n".encode("utf-16-le") + b"F", "m:2: not valid UTF-16-LE"),
        (
            codecs.BOM_UTF16_BE + "\n\n".encode("utf-16-be") + b"\xd8\x00",
            "m:3: not valid UTF-16-BE",
        ),
    ],
)
def test_undecodable_bytes_name_their_line(data: bytes, message: str):
    with pytest.raises(ModelfileError) as info:
        decode_modelfile(data, "m")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("instruction", "line"),
    [
        (Instruction("system", "terse"), "SYSTEM terse"),
        (Instruction("system", ""), 'SYSTEM ""'),
        (Instruction("system", " padded"), f"SYSTEM {Q3} padded{Q3}"),
        (Instruction("system", "tab\t"), f"SYSTEM {Q3}tab\t{Q3}"),
        (Instruction("system", 'say "hi"'), f'SYSTEM {Q3}say "hi"{Q3}'),
        (Instruction("system", "two\nlines"), f"SYSTEM {Q3}two\nlines{Q3}"),
        (Instruction("system", "cr\ronly"), f"SYSTEM {Q3}cr\ronly{Q3}"),
        (Instruction("system", '"'), f'SYSTEM {Q3}"{Q3}'),
        (Instruction("system", Q3), f"SYSTEM {Q3 * 3}"),
        (Instruction("system", f"{Q3}x"), f"SYSTEM {Q3}{Q3}x{Q3}"),
        (Instruction("system", "# hash"), "SYSTEM # hash"),
        (Instruction("parameter", "<|im_end|>", key="stop"), "PARAMETER stop <|im_end|>"),
        (Instruction("message", "hi\nthere", key="user"), f"MESSAGE user {Q3}hi\nthere{Q3}"),
        (Instruction("from", "/models/my model.gguf"), "FROM /models/my model.gguf"),
    ],
)
def test_format_quotes_only_what_needs_it(instruction: Instruction, line: str):
    mf = Modelfile((Instruction("from", "base"), instruction))
    text = format_modelfile(mf)
    assert text == f"FROM base\n{line}\n"
    assert parse_modelfile(text) == mf


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"a{Q3}\nb", f"m:7: SYSTEM value cannot be written: a line in it ends with {Q3}"),
        (f"a{Q3} \t\r\nb", f"m:7: SYSTEM value cannot be written: a line in it ends with {Q3}"),
        (f"{Q3} \nb", f"m:7: SYSTEM value cannot be written: a line in it ends with {Q3}"),
        ("zero\u200bwidth", "m:7: SYSTEM value holds U+200B, which a Modelfile cannot hold"),
        ("nul\x00", "m:7: SYSTEM value holds U+0000, which a Modelfile cannot hold"),
    ],
)
def test_format_refuses_values_a_modelfile_cannot_hold(value: str, message: str):
    mf = Modelfile((Instruction("from", "base"), Instruction("system", value, 7)), "m")
    with pytest.raises(ModelfileError) as info:
        format_modelfile(mf)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "FROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER top_k 1\nTEMPLATE template1\n"
        "MESSAGE system You are a file parser.\nMESSAGE user Hey there!\n",
        f'FROM foo\nLICENSE {Q3}\nVery long legal text.\n"Oh look, a quote!"\n{Q3}\n\n'
        f'MESSAGE system {Q3}\nAlways respond with "Hello!".\n{Q3}\n',
        'FROM foo\nSYSTEM ""\n',
    ],
)
def test_ollamas_format_then_parse_cases(text: str):
    mf = parse_modelfile(text)
    assert parse_modelfile(format_modelfile(mf)) == mf


def test_constructing_a_modelfile_needs_a_from():
    with pytest.raises(ModelfileError, match=r"^Modelfile:1: no FROM line$"):
        Modelfile(())


@pytest.mark.parametrize(
    ("instruction", "message"),
    [
        (Instruction("form", "x", 2), 'Modelfile:2: unknown instruction "form"'),
        (Instruction("system", "x", 2, "k"), 'Modelfile:2: SYSTEM takes no name, got "k"'),
        (
            Instruction("parameter", "x", 3, "seed"),
            'Modelfile:3: invalid integer value "x" for parameter seed',
        ),
    ],
)
def test_constructing_a_modelfile_validates_each_instruction(
    instruction: Instruction, message: str
):
    with pytest.raises(ModelfileError) as info:
        Modelfile((Instruction("from", "base"), instruction))
    assert str(info.value) == message


def test_equality_ignores_line_numbers_and_path():
    a = parse_modelfile("FROM base\nSYSTEM s\n", "a")
    b = parse_modelfile("\n\n# moved\nFROM base\n\nSYSTEM s", "b")
    assert a == b
    assert [i.line for i in a.instructions] != [i.line for i in b.instructions]


PRINTABLE = st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"))
TEXT = st.text(st.one_of(PRINTABLE, st.sampled_from(' \t\r\n"#')), max_size=30)
PARAMS = st.one_of(
    st.sampled_from(
        [
            ("temperature", "0.7"),
            ("temperature", "1e-3"),
            ("top_k", "40"),
            ("num_ctx", "-1"),
            ("use_mmap", "False"),
            ("mirostat", "anything"),
        ]
    ),
    st.tuples(st.just("stop"), TEXT),
)
INSTRUCTIONS = st.one_of(
    st.builds(Instruction, st.sampled_from(["from", "adapter", "draft"]), TEXT.filter(bool)),
    st.builds(
        Instruction,
        st.sampled_from(["template", "system", "license", "requires", "renderer", "parser"]),
        TEXT,
    ),
    st.builds(
        lambda role, value: Instruction("message", value, key=role), st.sampled_from(ROLES), TEXT
    ),
    PARAMS.map(lambda p: Instruction("parameter", p[1], key=p[0])),
)


@st.composite
def modelfiles(draw: st.DrawFn) -> Modelfile:
    instructions = draw(st.lists(INSTRUCTIONS, max_size=8))
    at = draw(st.integers(0, len(instructions)))
    instructions.insert(at, Instruction("from", draw(TEXT.filter(bool))))
    return Modelfile(tuple(instructions))


@given(modelfiles())
def test_format_then_parse_round_trips(mf: Modelfile):
    try:
        text = format_modelfile(mf)
    except ModelfileError as exc:
        assert "a line in it ends with" in exc.message
        assert any(Q3 in i.value for i in mf.instructions)
        reject()
    again = parse_modelfile(text)
    assert again == mf
    assert format_modelfile(again) == text


@given(st.text())
def test_any_text_parses_or_fails_with_a_modelfile_error(text: str):
    try:
        parse_modelfile(text)
    except ModelfileError as exc:
        assert exc.line >= 1
