"""The deployment card's long tables (identities, callers, withdrawal plan) are drawn in
Python (governance.views_proof): the same rows the template's loops drew, for every
branch of those loops, markup in names escaped."""

from __future__ import annotations

from django.template import Context, Template

from governance import views_proof

# The loops as the template had them (deployment_proof.html before the rows moved).
IDENTITY_LOOP = """{% for x in identities %}
      <tr><td>{% if x.url %}<a href="{{ x.url }}">{{ x.name }}</a>{% else %}<span class="text-body-secondary">{{ x.name }}</span>{% endif %}{% if x.third_party %} <span class="badge text-bg-warning">third party</span>{% endif %}</td><td>{{ x.kind_label }}</td><td>{{ x.provider|default:"—" }}{% if x.vendor %} / {{ x.vendor }}{% endif %}</td><td>{% if x.owner.hidden %}another team{% elif x.owner %}{{ x.owner.username }}{% else %}<span class="badge text-bg-danger">no owner</span>{% endif %}</td><td>{% if x.age_days is not None %}{{ x.age_days }} d (issued {{ x.issued_at }}){% else %}unknown{% endif %}</td><td>{{ x.rotated_at|default:"never" }}</td><td>{{ x.last_used_at|default:"never" }}</td><td>{{ x.status_label }}</td><td>{{ x.source.name }}</td></tr>{% endfor %}"""
CALLER_LOOP = """{% for c in callers %}
      <tr><td>{{ c.service|default:"—" }}</td><td>{{ c.user|default:"—" }}</td><td>{% if c.identity.url %}<a href="{{ c.identity.url }}">{{ c.identity.name }}</a>{% elif c.identity %}{{ c.identity.name }}{% endif %}{% if not c.bound %} <span class="badge text-bg-danger" data-testid="unbound-caller">not bound to a known identity</span>{% endif %}</td><td class="text-end">{{ c.calls }}</td><td class="text-end">{{ c.errors }}</td><td>{{ c.last_hour }}</td></tr>{% endfor %}"""
PLAN_LOOP = """{% for p in plan %}
      <tr><td>{% if p.identity.url %}<a href="{{ p.identity.url }}">{{ p.identity.name }}</a>{% else %}{{ p.identity.name }}{% endif %}</td><td data-revoker="{{ p.revoker }}">{% if p.revoker == "connector" %}a connector{% elif p.revoker == "person" %}a person{% else %}—{% endif %}</td><td>{{ p.how }}</td></tr>{% endfor %}"""

EVIL = "<b>\"x\" & 'y'</b>"
IDENTITIES = [
    {
        "name": EVIL,
        "url": "/inventory/identities/1/?a=1&b=2",
        "third_party": True,
        "kind_label": "API key",
        "provider": "aws",
        "vendor": EVIL,
        "owner": {"id": 3, "username": "olivia<", "name": ""},
        "age_days": 12,
        "issued_at": "2026-11-20T00:00:00+00:00",
        "rotated_at": "2026-11-21T00:00:00+00:00",
        "last_used_at": None,
        "status_label": "Active",
        "source": {"name": "AWS & co"},
    },
    {
        "name": "An identity of another team",
        "url": None,
        "third_party": False,
        "kind_label": "Service account",
        "provider": "",
        "vendor": "",
        "owner": {"id": None, "username": "", "name": "", "hidden": True},
        "age_days": None,
        "issued_at": None,
        "rotated_at": "",
        "last_used_at": "2026-11-30T10:00:00+00:00",
        "status_label": "Revoked",
        "source": {"name": "Entered by hand"},
    },
    {
        "name": "no-owner",
        "url": "/inventory/identities/3/",
        "third_party": False,
        "kind_label": "Token",
        "provider": "vault",
        "vendor": "",
        "owner": None,
        "age_days": 0,
        "issued_at": "2026-12-02T00:00:00+00:00",
        "rotated_at": None,
        "last_used_at": None,
        "status_label": "Active",
        "source": {"name": "Vault"},
    },
]
CALLERS = [
    {
        "service": EVIL,
        "user": "",
        "identity": {"name": EVIL, "url": "/inventory/identities/1/"},
        "bound": True,
        "calls": 1234567,
        "errors": 0,
        "last_hour": "2026-12-02T06:00:00+00:00",
    },
    {
        "service": "",
        "user": "u@x",
        "identity": {"name": "An identity of another team", "url": None},
        "bound": False,
        "calls": 5,
        "errors": 2,
        "last_hour": "2026-12-01T06:00:00+00:00",
    },
    {
        "service": "svc",
        "user": "",
        "identity": None,
        "bound": False,
        "calls": 0,
        "errors": 0,
        "last_hour": None,
    },
]
PLAN = [
    {"identity": {"name": EVIL, "url": "/i/1/"}, "revoker": "connector", "how": EVIL},
    {"identity": {"name": "hidden", "url": None}, "revoker": "person", "how": "Ask."},
    {"identity": {"name": "x", "url": "/i/3/"}, "revoker": "none", "how": "Nothing."},
]


def _rows(loop: str, **context) -> str:
    return Template(loop).render(Context(context)).strip()


def test_identity_rows_match_the_template():
    assert views_proof.identity_rows_html(IDENTITIES) == _rows(
        IDENTITY_LOOP, identities=IDENTITIES
    )
    assert "&lt;b&gt;" in views_proof.identity_rows_html(IDENTITIES)


def test_caller_rows_match_the_template():
    assert views_proof.caller_rows_html(CALLERS) == _rows(CALLER_LOOP, callers=CALLERS)


def test_plan_rows_match_the_template():
    assert views_proof.plan_rows_html(PLAN) == _rows(PLAN_LOOP, plan=PLAN)
