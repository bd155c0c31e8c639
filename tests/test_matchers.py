"""Label matchers: Alertmanager 0.25's parser, printing, ordering, and Go-regexp semantics."""
from __future__ import annotations

import pytest

from routing.matchers import GoRegexError, Matcher, compile_go, go_quote, matchers_from_config, matchers_key, parse_matcher, parse_matchers, parse_matchers_list
from service.core.errors import ConfigError

# input -> [(name, op, value), ...] as AM's ParseMatchers reads it
ACCEPTED = [
    ('{foo="bar"}', [("foo", "=", "bar")]),
    ('{foo=~"bar.*"}', [("foo", "=~", "bar.*")]),
    ('{foo!="bar"}', [("foo", "!=", "bar")]),
    ('{foo!~"bar.*"}', [("foo", "!~", "bar.*")]),
    ('{foo="bar", baz!="quux"}', [("foo", "=", "bar"), ("baz", "!=", "quux")]),
    ('{foo="bar",baz!~".*quux", derp="wat"}', [("foo", "=", "bar"), ("baz", "!~", ".*quux"), ("derp", "=", "wat")]),
    ('{foo=""}', [("foo", "=", "")]),
    ('{foo="bar,quux", job="job1"}', [("foo", "=", "bar,quux"), ("job", "=", "job1")]),
    ('{foo = "bar", dings != "bums", }', [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ("foo=bar,dings!=bums", [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ("env=prod", [("env", "=", "prod")]),
    ('{quote="She said: \\"Hi, all!\\""}', [("quote", "=", 'She said: "Hi, all!"')]),
    ('statuscode=~"5.."', [("statuscode", "=~", "5..")]),
    ("tricky=~~~", [("tricky", "=~", "~~")]),
    ('trickier==\\\\=\\=\\"', [("trickier", "=", '=\\=\\="')]),
    ('contains_quote != "\\"" , contains_comma !~ "foo,bar" , ', [
        ("contains_quote", "!=", '"'), ("contains_comma", "!~", "foo,bar")]),
    ('nl="a\\nb"', [("nl", "=", "a\nb")]),
    ('colon:name="x"', [("colon:name", "=", "x")]),
    ('lit="C:\\dir"', [("lit", "=", "C:\\dir")]),  # a spurious escape keeps its backslash
    ('trail=a\\', [("trail", "=", "a\\")]),  # a backslash as the last character is literal
    ("", []),
    ("{}", []),
]

# input -> substring of the error AM gives
REJECTED = [
    ("job=", "matcher value is not present"),
    ('job="value', "unescaped double quote"),
    ('job=value"', "unescaped double quote"),
    ('trickier==\\\\=\\=\\""', "unescaped double quote"),
    ('contains_unescaped_quote = foo"bar', "unescaped double quote"),
    ('{invalid-name = "valid label"}', "bad matcher format"),
    ('{foo=~"invalid[regexp"}', "missing closing ]"),
    ('"{foo=\\"bar"}', "bad matcher format"),
    ('"foo=\\"bar\\""', "bad matcher format"),
    ('"foo="bar""', "bad matcher format"),
    ("a=b,,c=d", "bad matcher format"),
    ("1abc=x", "bad matcher format"),
]


@pytest.mark.parametrize("text,want", ACCEPTED)
def test_parse_matchers_accepts_am_syntax(text, want):
    """Every string Alertmanager's ParseMatchers accepts parses to the same matchers, in order."""
    got = parse_matchers(text, "route.matchers[0]")
    assert [(m.name, m.op, m.value) for m in got] == want


@pytest.mark.parametrize("text,err", REJECTED)
def test_parse_matchers_rejects_what_am_rejects(text, err):
    """Malformed matchers are ConfigErrors naming the path and saying what is wrong."""
    with pytest.raises(ConfigError) as ei:
        parse_matchers(text, "route.routes[2].matchers[0]")
    assert ei.value.path == "route.routes[2].matchers[0]"
    assert err in ei.value.message


def test_equal_op_value_may_start_with_operator_characters():
    """'foo==~x' is an equality matcher whose value is '=~x', as AM's regex splits it."""
    m = parse_matcher("foo==~x", "p")
    assert (m.name, m.op, m.value) == ("foo", "=", "=~x")


def test_parse_matchers_list_splits_and_sorts():
    """One `matchers:` entry may hold several matchers; the list comes back in AM's sorted order."""
    ms = parse_matchers_list(['{b="1", a=~"x"}', "a=2", 'a!="2"'], "route.matchers")
    assert [str(m) for m in ms] == ['a="2"', 'a!="2"', 'a=~"x"', 'b="1"']


def test_parse_matchers_list_error_names_the_item():
    """An error in the second `matchers:` item names that item's index."""
    with pytest.raises(ConfigError) as ei:
        parse_matchers_list(["a=1", "b=~(("], "route.routes[0].matchers")
    assert ei.value.path == "route.routes[0].matchers[1]"


@pytest.mark.parametrize(
    "m,labels,want",
    [
        (Matcher("env", "=", "prod"), {"env": "prod"}, True),
        (Matcher("env", "=", "prod"), {}, False),
        (Matcher("env", "=", ""), {}, True),  # a missing label reads as ""
        (Matcher("env", "!=", "prod"), {}, True),
        (Matcher("env", "!=", ""), {}, False),
        (Matcher("env", "=~", "prod|staging"), {"env": "staging"}, True),
        (Matcher("env", "=~", "prod"), {"env": "production"}, False),  # anchored
        (Matcher("env", "=~", "prod"), {"env": "xprod"}, False),
        (Matcher("env", "=~", "prod"), {"env": "prod\n"}, False),  # Go's $ is end of text
        (Matcher("env", "=~", ".*"), {}, True),
        (Matcher("env", "=~", ".+"), {}, False),
        (Matcher("env", "!~", "prod.*"), {"env": "dev"}, True),
        (Matcher("env", "!~", "prod.*"), {"env": "production"}, False),
        (Matcher("env", "!~", ".+"), {}, True),
        (Matcher("env", "=~", "^(?:prod)$"), {"env": "prod"}, True),  # match_re's stored form
        (Matcher("a", "=~", "a|b"), {"a": "ab"}, False),  # the whole alternation is anchored
    ],
)
def test_matcher_matches(m, labels, want):
    """Matchers compare exactly, treat missing labels as "", and anchor regexes at both ends."""
    assert m.matches(labels) is want


@pytest.mark.parametrize(
    "m,text",
    [
        (Matcher("env", "=", "prod"), 'env="prod"'),
        (Matcher("env", "!~", "a|b"), 'env!~"a|b"'),
        (Matcher("q", "=", 'say "hi"\\'), 'q="say \\"hi\\"\\\\"'),
        (Matcher("n", "=", "a\nb\tc"), 'n="a\\nb\\tc"'),
        (Matcher("c", "=", "\x01\x7f"), 'c="\\x01\\x7f"'),
        (Matcher("u", "=", "caf\u00e9 \u2603"), 'u="caf\u00e9 \u2603"'),  # printable runes stay
        (Matcher("z", "=", "\u200b"), 'z="\\u200b"'),  # a format character is escaped
        (Matcher("e", "=", ""), 'e=""'),
    ],
)
def test_matcher_str_is_go_quoted(m, text):
    """str(matcher) is name + op + Go's %q of the value, as AM's Matcher.String."""
    assert str(m) == text


def test_go_quote_astral():
    """Go's %q keeps printable astral runes and escapes non-printable ones with \\U."""
    assert go_quote("\U0001F600") == '"\U0001F600"'
    assert go_quote("\U000E0001") == '"\\U000e0001"'


def test_matchers_key_sorts_by_name_value_then_type():
    """matchers_key prints AM's sorted Matchers.String(): by name, then value, then =, !=, =~, !~."""
    ms = [Matcher("b", "=", "1"), Matcher("a", "!~", "x"), Matcher("a", "=", "x"), Matcher("a", "=", "w")]
    assert matchers_key(ms) == '{a="w",a="x",a!~"x",b="1"}'
    assert matchers_key([]) == "{}"


def test_matchers_from_config_merges_old_and_new_styles():
    """match, match_re and matchers merge into one sorted list; match_re values read as ^(?:v)$."""
    d = {"match": {"team": "a", "code": 500}, "match_re": {"env": "prod|stg"}, "matchers": ['sev!="info"']}
    ms = matchers_from_config(d, "route.routes[0]")
    assert [str(m) for m in ms] == ['code="500"', 'env=~"^(?:prod|stg)$"', 'sev!="info"', 'team="a"']
    assert ms[1].matches({"env": "stg"}) and not ms[1].matches({"env": "prod2"})


@pytest.mark.parametrize(
    "d,path,msg",
    [
        ({"match_re": {"env": "a(b"}}, "r.match_re.env", "missing closing )"),
        ({"match": {"bad-name": "x"}}, "r.match", "invalid label name"),
        ({"match_re": {"0x": "x"}}, "r.match_re", "invalid label name"),
        ({"match": {"env": 1.5}}, "r.match.env", "must be a string"),
        ({"match": ["env=x"]}, "r.match", "mapping"),
        ({"matchers": "env=x"}, "r.matchers", "list"),
        ({"matchers": ["env=~(?=x)"]}, "r.matchers[0]", "invalid or unsupported Perl syntax"),
    ],
)
def test_matchers_from_config_errors_name_the_path(d, path, msg):
    """Bad matcher config is a ConfigError at the path of the offending field."""
    with pytest.raises(ConfigError) as ei:
        matchers_from_config(d, "r")
    assert ei.value.path == path
    assert msg in ei.value.message


# Go regexp semantics on Python's re: (go pattern, value, matches with Go's MatchString)
GO_REGEX_CASES = [
    ("^(?:foo)$", "foo", True),
    ("^(?:foo)$", "foo\n", False),
    ("^(?:\\d+)$", "123", True),
    ("^(?:\\d+)$", "\u0661\u0662", False),  # Go's \d is ASCII only
    ("^(?:\\w+)$", "caf\u00e9", False),  # and so is \w
    ("^(?:\\s)$", "\v", False),  # Go's \s is [\t\n\f\r ]
    ("^(?:(?i)abc)$", "ABC", True),
    ("^(?:a(?i)bc)$", "aBC", True),  # a flag group scopes to the rest of its group
    ("^(?:a(?i)b|c)$", "C", True),  # ... across an alternation
    ("^(?:(?i:a)b)$", "Ab", True),
    ("^(?:(?i:a)b)$", "AB", False),
    ("^(?:[[:alpha:]]+)$", "abcXYZ", True),
    ("^(?:[[:alpha:]]+)$", "ab1", False),
    ("^(?:[]a]+)$", "]a]", True),
    ("^(?:[^]a]+)$", "bc", True),
    ("^(?:[a-c-])$", "-", True),
    ("^(?:[[])$", "[", True),
    ("^(?:\\Qa.b\\E*)$", "a.bbb", True),
    ("^(?:\\Qa.b\\E*)$", "axb", False),
    ("^(?:a{,2})$", "a{,2}", True),  # not a repeat in Go: literal
    ("^(?:a{,2})$", "aa", False),
    ("^(?:a{2})$", "aa", True),
    ("^(?:\\x{263a})$", "\u263a", True),
    ("^(?:\\x41)$", "A", True),
    ("^(?:\\101)$", "A", True),  # octal
    ("^(?:\\012)$", "\n", True),
    ("^(?:x\\b)$", "x", True),
    ("^(?:.)$", "\n", False),
    ("^(?:(?s).)$", "\n", True),
    ("^(?:(?m)a$)$", "a", True),
    ("^(?:a|b)$", "ab", False),
    ("^(?:a)|(b)$", "xb", True),  # an unbalanced value changes what is anchored, in Go too
    ("^(?:a*?)$", "aaa", True),
    ("^(?:(?P<x>a)b)$", "ab", True),
    ("^(?:\\pL+)$", "caf\u00e9", True),  # Unicode classes, as in Go
    ("^(?:\\p{Greek})$", "a", False),
    ("^(?:(?U)a+)$", "aa", True),  # ungreedy flag
]


@pytest.mark.parametrize("pattern,value,want", GO_REGEX_CASES)
def test_go_regex_semantics(pattern, value, want):
    """Go regexps compiled on RE2 match exactly the strings Go's regexp would."""
    assert (compile_go(pattern).search(value) is not None) is want


@pytest.mark.parametrize(
    "pattern",
    [
        "a(?=b)",  # lookahead
        "a(?!b)",
        "(?<=a)b",  # lookbehind
        "(a)\\1",  # backreference
        "a*+",  # possessive (Python 3.11 would accept it)
        "a++",
        "a**",
        "[a",
        "a)",
        "(a",
        "\\C",  # RE2's any-byte escape: Go refuses it
        "(?x)a",
        "\\e",
        "\\Z",
        "a{1001}",
        "a{2,1}",
        "(?<n>a)",
        "*a",
        "(?#c)",
        "(?P=n)",
        "\\",
    ],
)
def test_go_regex_rejects(pattern):
    """Patterns Go rejects (or Tocsin cannot run faithfully) are errors, never silently different."""
    with pytest.raises(GoRegexError):
        compile_go(pattern)
