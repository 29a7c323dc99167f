"""List tables. Rows arrive already sorted and paginated (see pagination.py); the table renders.

django-tables2 declares the columns and draws the header and pager; the rows are drawn by
`KeysetTable.rows_html`, which compiles each column once per page into a plain function
(value path, display text, render method, link) and runs those functions per row. Rendering
a cell through django-tables2 costs an accessor walk, a signature inspection and a link
lookup per cell; at 50 rows × 11 columns that was most of a list page's CPU (bench).
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import inspect
import threading
from collections.abc import Callable
from typing import Any

import django_tables2 as tables
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, QuerySet
from django.db.models.base import ModelState
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django_tables2.rows import BoundRow
from django_tables2.utils import OrderBy, OrderByTuple

from inventory import models as m
from inventory import querysets, source_names
from inventory.templatetags.runproof import status_badge

# An id no row has, reversed once per URL name and page; each row's link swaps in its id.
_URL_SENTINEL = 987654321987
_CELL_ARGUMENTS = {"value", "record", "table", "column", "bound_column"}


class PageUrls:
    """Detail links for one page: reverse() once per URL name, then string substitution."""

    def __init__(self) -> None:
        self._split: dict[object, tuple[str, str] | None] = {}

    def path(self, name: str, pk: Any) -> str:
        try:
            split = self._split[name]
        except KeyError:
            split = self._split[name] = _split(reverse(name, args=[_URL_SENTINEL]))
        if split is None:
            return reverse(name, args=[pk])
        return f"{split[0]}{pk}{split[1]}"

    def of(self, obj: Model) -> str:
        """obj.get_absolute_url(), reversed once per model and page."""
        model = type(obj)
        try:
            split = self._split[model]
        except KeyError:
            split = self._split[model] = _split(
                model(pk=_URL_SENTINEL).get_absolute_url()
            )
        if split is None:  # its URL is not built from its id alone
            return obj.get_absolute_url()
        return f"{split[0]}{obj.pk}{split[1]}"

    def href_of(self, model: type[Model]) -> Callable[[Model], str]:
        """A function answering html.escape(urls.of(obj)) for objects of `model`: the
        escaped URL around each row's id (an integer id needs no escaping)."""
        if model not in self._split:
            self._split[model] = _split(model(pk=_URL_SENTINEL).get_absolute_url())
        split = self._split[model]
        if split is None:
            return lambda obj: html.escape(obj.get_absolute_url())
        head, tail = html.escape(split[0]), html.escape(split[1])

        def href(obj: Model) -> str:
            pk = obj.pk
            return f"{head}{pk if pk.__class__ is int else html.escape(str(pk))}{tail}"

        return href


def _split(url: str) -> tuple[str, str] | None:
    head, found, tail = url.partition(str(_URL_SENTINEL))
    return (head, tail) if found else None


def _escape(value: Any) -> str:
    """conditional_escape() without its lazy-string wrapper (550 calls a page)."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


def _parameters(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    """The cell arguments `fn` takes, and whether it takes them all (**kwargs)."""
    return _signature_of(getattr(fn, "__func__", fn), hasattr(fn, "__self__"))


# Keyed by the plain function (a render method, a column's render): a few dozen in all;
# the bound is only a guard.
@functools.lru_cache(maxsize=512)
def _signature_of(fn: Callable[..., Any], bound: bool) -> tuple[frozenset[str], bool]:
    params = list(inspect.signature(fn).parameters.values())[1 if bound else 0 :]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset(_CELL_ARGUMENTS), True
    return frozenset(p.name for p in params), False


def _calls(value: Any) -> Any:
    # As django-tables2's Accessor: call methods, never managers or data-altering ones.
    if callable(value) and not getattr(value, "do_not_call_in_templates", False):
        if getattr(value, "alters_data", False):
            return None
        return value()
    return value


class RowReader:
    """A page's rows read as tuples (`values_list` of the fields a table shows) and made
    into model instances without `Model.__init__` / `from_db`: the instance's __dict__ is
    the tuple's fields, its joined rows are cached on it the way select_related caches
    them. Building 50 rows of five instances each through Django cost about 3 ms of a
    list page's CPU (bench, deployment list); this costs a tenth of that.

    Only the declared fields are read (plus the ids of the rows joined through, and the
    query's annotations). Reading another one goes back to the database, as a deferred
    field does: a query per row, which the query-count tests (3 rows against 30) catch.
    """

    def __init__(
        self, model: type[Model], fields: tuple[str, ...], annotations: tuple[str, ...]
    ) -> None:
        self.paths: list[str] = []
        self._make = self._builder(model, list(fields), "", annotations)

    def read(self, queryset: QuerySet) -> list[Model]:
        make, db = self._make, queryset.db
        return [make(row, db) for row in queryset.values_list(*self.paths)]

    def _builder(
        self,
        model: type[Model],
        paths: list[str],
        prefix: str,
        annotations: tuple[str, ...] = (),
    ) -> Callable[[tuple, str], Model]:
        opts = model._meta
        own = [opts.pk.attname]
        joined: dict[str, list[str]] = {}
        for path in paths:
            head, _, rest = path.partition("__")
            if rest:
                joined.setdefault(head, []).append(rest)
            else:
                name = opts.get_field(head).attname
                if name not in own:
                    own.append(name)
        for head in joined:
            fk = opts.get_field(head)
            if fk.attname not in own:
                own.append(fk.attname)
        start = len(self.paths)
        self.paths += [f"{prefix}{name}" for name in own]
        self.paths += list(annotations)
        names = own + list(annotations)
        stop = start + len(names)
        fk_at = {
            head: start + own.index(opts.get_field(head).attname) for head in joined
        }
        subs = [
            (
                head,
                fk_at[head],
                self._builder(
                    opts.get_field(head).related_model, rest, f"{prefix}{head}__"
                ),
            )
            for head, rest in joined.items()
        ]
        new = model.__new__

        def make(row: tuple, db: str) -> Model:
            obj = new(model)
            values = obj.__dict__
            values.update(zip(names, row[start:stop], strict=True))
            state = values["_state"] = ModelState()
            state.db, state.adding = db, False
            state.fields_cache = {
                head: None if row[at] is None else sub(row, db)
                for head, at, sub in subs
            }
            return obj

        return make


class KeysetTable(tables.Table):
    """A table over one keyset page: it shows the sort state but never re-sorts the rows."""

    class Meta:
        template_name = "django_tables2/runproof_table.html"
        attrs = {"class": "table table-sm table-hover align-middle"}
        orderable = False  # per column, and only for indexed, non-null fields

    # Column classes whose render() the compiled rows call directly (others go through
    # django-tables2 cell by cell: correct, only slower).
    compiled_columns: tuple[type[tables.Column], ...] = ()
    # The fields the rows are read with (`RowReader`: `field`, or `relation__field` through
    # a join): the list reads them as tuples instead of model instances. Empty: instances.
    row_fields: tuple[str, ...] = ()

    @classmethod
    def read_rows(cls, queryset: QuerySet) -> list[Model]:
        """The rows of `queryset` (a page: ordered and sliced) as `RowReader` builds them."""
        annotations = tuple(queryset.query.annotation_select)
        key = (cls, annotations)
        reader = _READERS.get(key)
        if reader is None:
            reader = _READERS[key] = RowReader(
                queryset.model, cls.row_fields, annotations
            )
        return reader.read(queryset)

    def __init__(
        self,
        *args: Any,
        page: Any = None,
        source_names: Callable[[], dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.keyset_page = page
        self.urls = PageUrls()
        self._source_names_loader = source_names
        self._source_names: dict[str, str] | None = None
        super().__init__(*args, **kwargs)

    @tables.Table.order_by.setter
    def order_by(self, value) -> None:
        value = value or ()
        value = value.split(",") if isinstance(value, str) else value
        self._order_by = OrderByTuple(
            [
                v
                for v in value
                if OrderBy(v).bare in self.columns
                and self.columns[OrderBy(v).bare].orderable
            ]
        )

    def source_names(self) -> dict[str, str]:
        """Source labels → names, read once per page (shared with the filter's choices)."""
        if self._source_names is None:
            loader = self._source_names_loader or source_names.names
            self._source_names = loader()
        return self._source_names

    def before_render(self, request: Any) -> None:
        # render_table calls this just before the table's template: the header needs it.
        self._request = request

    # -- header --------------------------------------------------------------------
    def thead_html(self) -> SafeString:
        """The <thead> (templates/django_tables2/_runproof_thead.html), rendered once per
        table class, columns, sort and query string per process (a 14-column header was
        about a millisecond of each list page's CPU), then read from a bounded cache.

        The key holds what the markup reads: the columns, the sort, and the request's
        query parameters in their order (each sort link keeps them, minus the cursor).
        """
        request = getattr(self, "_request", None)
        params = (
            tuple(
                (k, tuple(v))
                for k, v in request.GET.lists()
                if k not in ("after", "before")
            )
            if request is not None
            else None
        )
        key = (
            type(self),
            tuple(self.columns.names()),
            self.show_header,
            str(self.order_by or ""),
            params,
        )
        html = _THEAD_CACHE.get(key)
        if html is None:
            html = mark_safe(  # noqa: S308 - a template's output
                get_template(THEAD_TEMPLATE).render({"table": self}, request)
            )
            with _THEAD_LOCK:
                if len(_THEAD_CACHE) >= _THEAD_CACHE_SIZE:
                    _THEAD_CACHE.clear()
                _THEAD_CACHE[key] = html
        return html

    # -- compiled rows -------------------------------------------------------------
    def rows_html(self) -> SafeString:
        """Every row of the page as <tr> markup, the same cells django-tables2 renders.

        Drawn once per table: the list view draws them before it renders the page
        (inventory.lists.keyset_list), and the template reads what was drawn. Drawn from
        inside the template, the loop ran some fifty frames deeper, where CPython 3.11
        allocates and frees a stack chunk on every call that crosses a chunk's end: the
        same 50 deployment rows took 5 to 7 ms there against 1.3 to 2 ms (bench).
        """
        drawn = self.__dict__.get("_rows_html")
        if drawn is None:
            drawn = self._rows_html = self._draw_rows()
        return drawn

    def _draw_rows(self) -> SafeString:
        records = list(self.data)
        if not records:
            return mark_safe("")  # noqa: S308
        cells = [self._compile(bound_column) for bound_column in self.columns]
        return mark_safe(  # noqa: S308 - every cell below is escaped or built by format_html
            "".join(
                [
                    "<tr><td>"
                    + "</td><td>".join([cell(record) for cell in cells])
                    + "</td></tr>"
                    for record in records
                ]
            )
        )

    def row_cells(self, record: Any) -> list[str]:
        """One row's cells as rows_html writes them (for tests and fallbacks)."""
        return [self._compile(bc)(record) for bc in self.columns]

    def compiles(self, name: str) -> bool:
        """Whether column `name` is drawn by the compiled path (not cell by cell)."""
        return self._compile_plan(self.columns[name]) is not None

    def _compile(self, bound_column: Any) -> Callable[[Any], str]:
        cache = self.__dict__.setdefault("_compiled", {})
        try:
            return cache[bound_column.name]
        except KeyError:
            pass
        plan = self._compile_plan(bound_column)
        if plan is None:
            name = bound_column.name

            def fallback(record: Any) -> str:
                return str(
                    conditional_escape(BoundRow(record, table=self).get_cell(name))
                )

            cache[name] = fallback
            return fallback
        cache[bound_column.name] = plan
        return plan

    def _compile_plan(self, bound_column: Any) -> Callable[[Any], str] | None:
        column = bound_column.column
        if type(column) is not tables.Column and not isinstance(
            column, self.compiled_columns + _COMPILED_COLUMNS
        ):
            return None
        link = column.link
        if link is not None and (
            link.url is not None or link.reverse_args or link.attrs or link.accessor
        ):
            return None
        render = getattr(self, f"render_{bound_column.name}", None)
        if render is None and type(column).render is not tables.Column.render:
            render = column.render
        wants, _ = _parameters(render) if render is not None else (frozenset(), False)
        if "bound_row" in wants:
            return None
        accessor = str(bound_column.accessor)
        value_of = self._value_path(accessor)
        link_of = self._value_path(bound_column.name, display=False) if link else None
        # A link to the row itself (a linkified field of the table's own model, such as
        # its name): the row's URL, without reading the field again.
        record_href = None
        model = getattr(self._meta, "model", None)
        if link_of is not None and model is not None and "." not in accessor:
            try:
                own = model._meta.get_field(bound_column.name)
            except FieldDoesNotExist:
                own = None
            if own is not None and not own.is_relation and accessor == own.name:
                link_of, record_href = None, self.urls.href_of(model)
        empty_values = column.empty_values
        default = str(conditional_escape(bound_column.default))
        fixed = {"table": self, "column": column, "bound_column": bound_column}
        fixed = {k: v for k, v in fixed.items() if k in wants}
        if render is not None and fixed:
            render = functools.partial(render, **fixed)
        wants_value, wants_record = "value" in wants, "record" in wants
        urls = self.urls

        def draw(record: Any, value: Any) -> str:
            if value in empty_values:
                return default
            if render is None:
                content = value
            elif wants_value and wants_record:
                content = render(value=value, record=record)
            elif wants_value:
                content = render(value=value)
            elif wants_record:
                content = render(record=record)
            else:
                content = render()
            if content.__class__ is not SafeString:
                if not isinstance(content, str):
                    content = localize(content)
                content = _escape(content)
            if link_of is not None:
                target = link_of(record)
                url = urls.of(target if isinstance(target, Model) else record)
                return f'<a href="{html.escape(url)}">{content}</a>'
            if record_href is not None:
                if record.__class__ is not model:  # a proxy or a subclass: its own URL
                    return f'<a href="{html.escape(urls.of(record))}">{content}</a>'
                return f'<a href="{record_href(record)}">{content}</a>'
            return content

        # A cell that depends on its value alone (no record, and no link or a link to the
        # value itself: a related row) is drawn once per value and page: a page shows a
        # few environments, teams, models, tiers.
        if wants_record or (link is not None and accessor != bound_column.name):
            return lambda record: draw(record, value_of(record))
        drawn: dict[tuple[type, Any], str] = {}

        def cell(record: Any) -> str:
            value = value_of(record)
            if link is not None and not isinstance(value, Model):
                return draw(record, value)  # a link to the record: its own URL
            # True and 1 are equal, their cells are not; a row by its id (its text and
            # link are the same on one page), without Model.__eq__ per lookup.
            key = (value.__class__, value.pk if isinstance(value, Model) else value)
            try:
                return drawn[key]
            except KeyError:
                text = drawn[key] = draw(record, value)
                return text
            except TypeError:  # unhashable
                return draw(record, value)

        return cell

    def _value_path(
        self, accessor: str, *, display: bool = True
    ) -> Callable[[Any], Any]:
        """A function reading `accessor` from a record, with choice fields' display text."""
        parts = accessor.replace("__", ".").split(".")
        model = getattr(self._meta, "model", None)
        use_display = False
        if display and model is not None:
            try:
                for part in parts[:-1]:
                    model = model._meta.get_field(part).related_model
                field = model._meta.get_field(parts[-1]) if model else None
            except (FieldDoesNotExist, AttributeError):
                field = None
            use_display = bool(getattr(field, "choices", None)) and not getattr(
                field, "is_relation", False
            )
        head, last = parts[:-1], parts[-1]
        display_name = f"get_{last}_display"
        # What get_<field>_display() answers, looked up in a dict made once per page.
        labels = (
            {key: str(label) for key, label in field.flatchoices} if use_display else {}
        )

        if not head and not use_display:

            def value_of(record: Any) -> Any:
                try:
                    value = getattr(record, last)
                except Exception:  # as django-tables2: a missing value is an empty cell
                    return None
                return _calls(value) if callable(value) else value

            return value_of

        def value_of(record: Any) -> Any:
            obj = record
            try:
                for part in head:
                    obj = _calls(getattr(obj, part))
                    if obj is None:
                        return None
                if use_display and isinstance(obj, Model):
                    raw = getattr(obj, last)
                    try:
                        return labels.get(raw, raw)
                    except TypeError:  # unhashable: let the model answer
                        return getattr(obj, display_name)()
                return _calls(getattr(obj, last))
            except Exception:  # as django-tables2: a missing value is an empty cell
                return None

        return value_of


# A handful of (text, tone) pairs, each drawn once per process rather than once per cell.
@functools.lru_cache(maxsize=64)
def _badge(text: str, tone: str) -> SafeString:
    return format_html(
        '<span class="badge text-bg-{} badge-flag">{}</span>', tone, text
    )


@functools.lru_cache(maxsize=256)
def _status_badge(value: str, display: str) -> SafeString:
    return status_badge(value, display)


def _joined(*parts: Any) -> SafeString:
    """format_html("{} {}", …) for a cell's few parts, without its per-call parsing."""
    return mark_safe(" ".join(_escape(p) for p in parts))  # noqa: S308 - each part escaped


class WhenColumn(tables.Column):
    """A UTC timestamp. Cheaper than DateTimeColumn, which renders a template per cell."""

    def __init__(self, *args, fmt: str = "%Y-%m-%d %H:%M", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fmt = fmt

    def render(self, value):
        # Rows come from the database in UTC: isoformat() writes the same text as
        # strftime() for the formats below at half its cost (2 to 4 of these a row).
        if value.utcoffset() == _ZERO and value.year >= 1000:  # noqa: PLR2004
            slice_to = _ISO_PREFIX.get(self.fmt)
            if slice_to is not None:
                return value.isoformat(" ", "seconds")[:slice_to]
        return value.astimezone(dt.UTC).strftime(self.fmt)


_ZERO = dt.timedelta(0)
# strftime formats that are a prefix of isoformat(" ", "seconds"): how long a prefix.
_ISO_PREFIX = {"%Y-%m-%d": 10, "%Y-%m-%d %H:%M": 16, "%Y-%m-%d %H:%M:%S": 19}


class SourceColumn(tables.Column):
    """Where a row came from (a data source, linked, or typed in) and whether its source
    stopped reporting it. Source names are read once per table, and only if a row needs one."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("verbose_name", "Source")
        super().__init__(accessor="source", empty_values=(), orderable=False, **kwargs)

    def render(self, record, table):
        label = record.source
        # A page holds a few sources: each label's cell is drawn once per table.
        cells = table.__dict__.setdefault("_source_cells", {})
        cell = cells.get(label)
        if cell is None:
            cell = cells[label] = self._cell(label, table)
        if record.gone_at is not None:
            return format_html(
                '{} <span class="badge text-bg-secondary" title="Gone since {}">gone</span>',
                cell,
                record.gone_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            )
        return cell

    @staticmethod
    def _cell(label: str, table: Any) -> SafeString:
        if label == m.MANUAL_SOURCE:
            return mark_safe('<span class="text-body-secondary">typed in</span>')  # noqa: S308
        names = table.source_names()
        kind, _, pk = label.partition(":")
        if label in names and pk.isdigit():
            return format_html(
                '<a href="{}">{}</a>',
                table.urls.path("sources:source_detail", int(pk)),
                names[label],
            )
        return format_html("<code>{}</code>", label)


class StatusColumn(tables.Column):
    """A choice field as a coloured badge; tables2 hands render() the display text."""

    def render(self, value, record, bound_column):
        return _status_badge(getattr(record, bound_column.name), value)


class LiveStatusColumn(StatusColumn):
    """The status badge, and "silent" beside an active row no source has reported for the
    policy's hours (querysets.deployment_is_silent / identity_is_silent): "Active" alone
    would read as answering now."""

    def __init__(self, *args, is_silent: Callable[..., bool], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.is_silent = is_silent

    def render(self, value, record, bound_column, table):
        badge = _status_badge(getattr(record, bound_column.name), value)
        # One "now" for the page, so every row is judged against the same moment.
        now = table.__dict__.get("_now")
        if now is None:
            now = table._now = timezone.now()
        if self.is_silent(record, now=now):
            return _silent_badge(badge)
        return badge


@functools.lru_cache(maxsize=64)
def _silent_badge(badge: SafeString) -> SafeString:
    return _joined(badge, _badge("silent", "secondary"))


_COMPILED_COLUMNS: tuple[type[tables.Column], ...] = (
    WhenColumn,
    SourceColumn,
    StatusColumn,
    LiveStatusColumn,
)


THEAD_TEMPLATE = "django_tables2/_runproof_thead.html"
# Rendered headers, per process: bounded, cleared when full (as inventory.lists' forms).
_THEAD_CACHE: dict[tuple, SafeString] = {}
_THEAD_CACHE_SIZE = 512
_THEAD_LOCK = threading.Lock()

# One reader per table and set of annotations (a handful in all).
_READERS: dict[tuple[type, tuple[str, ...]], RowReader] = {}


class TeamTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    description = tables.Column(orderable=False)

    row_fields = (
        "name",
        "description",
    )

    class Meta(KeysetTable.Meta):
        model = m.Team
        fields = ("name", "description")


# A risk tier's badge colour: 1 riskiest (governance.tiers).
TIER_TONES = {1: "danger", 2: "warning", 3: "info", 4: "success"}


def tier_badge(value: Any) -> SafeString:
    return _badge(str(value), TIER_TONES.get(value, "secondary"))


class AIModelTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    risk_tier = tables.Column(verbose_name="Tier", orderable=True)
    kind = tables.Column()
    provider = tables.Column()
    lifecycle = StatusColumn()
    team = tables.Column(linkify=True)
    owner = tables.Column(empty_values=(), verbose_name="Owner")
    source = SourceColumn()
    updated_at = WhenColumn(
        orderable=True,
        verbose_name="Updated",
    )

    row_fields = (
        "name",
        "risk_tier",
        "kind",
        "provider",
        "lifecycle",
        "team__name",
        "owner__username",
        "source",
        "gone_at",
        "updated_at",
    )

    class Meta(KeysetTable.Meta):
        model = m.AIModel
        fields = (
            "name",
            "risk_tier",
            "kind",
            "provider",
            "lifecycle",
            "team",
            "owner",
            "source",
            "updated_at",
        )

    def render_owner(self, record):
        return (
            record.owner.get_username()
            if record.owner
            else _badge("no owner", "danger")
        )

    def render_risk_tier(self, value):
        return tier_badge(value)


class ModelVersionTable(KeysetTable):
    model = tables.Column(linkify=True)
    version = tables.Column(linkify=True, orderable=True)
    approval = StatusColumn()
    digest = tables.Column()
    approved_at = WhenColumn(fmt="%Y-%m-%d")
    created_at = WhenColumn(orderable=True, verbose_name="Registered", fmt="%Y-%m-%d")
    source = SourceColumn()

    row_fields = (
        "model__name",
        "version",
        "approval",
        "digest",
        "approved_at",
        "created_at",
        "source",
        "gone_at",
    )

    class Meta(KeysetTable.Meta):
        model = m.ModelVersion
        fields = (
            "model",
            "version",
            "approval",
            "digest",
            "approved_at",
            "created_at",
            "source",
        )

    def render_digest(self, value):
        return format_html(
            "<code>{}</code>", value[:19] + ("…" if len(value) > 19 else "")
        )


class SystemTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    kind = tables.Column()
    team = tables.Column(linkify=True)
    owner = tables.Column(empty_values=())
    business_purpose = tables.Column(verbose_name="Purpose")

    row_fields = (
        "name",
        "kind",
        "team__name",
        "owner__username",
        "business_purpose",
    )

    class Meta(KeysetTable.Meta):
        model = m.System
        fields = ("name", "kind", "team", "owner", "business_purpose")

    def render_owner(self, record):
        return (
            record.owner.get_username()
            if record.owner
            else _badge("no owner", "danger")
        )

    def render_business_purpose(self, value):
        return value[:80] + ("…" if len(value) > 80 else "")


# Eight combinations, each drawn once per process.
@functools.lru_cache(maxsize=8)
def _flags(external: bool, write: bool, decides: bool) -> SafeString | str:
    flags = []
    if external:
        flags.append(_badge("external", "danger"))
    if write:
        flags.append(_badge("write", "warning"))
    if decides:
        flags.append(_badge("decides", "primary"))
    return _joined(*flags) if flags else "—"


class DeploymentTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    # Kept by governance.tiers (an override in force included).
    risk_tier = tables.Column(verbose_name="Tier", orderable=True)
    model = tables.Column(linkify=True)
    observed_version = tables.Column(verbose_name="Running", empty_values=())
    # The baseline (querysets.BASELINE): the committee's pin, else the model's baseline;
    # `baseline_label` is annotated by the list (views.deployment_rows).
    baseline = tables.Column(
        verbose_name="Approved", accessor="baseline_label", empty_values=()
    )
    environment = tables.Column(orderable=True)
    exposure = tables.Column()
    flags = tables.Column(empty_values=(), verbose_name="Risk flags")
    status = LiveStatusColumn(is_silent=querysets.deployment_is_silent)
    team = tables.Column(linkify=True, orderable=True)
    owner = tables.Column(empty_values=(), orderable=True)
    source = SourceColumn()
    last_seen_at = WhenColumn(
        orderable=True,
        verbose_name="Last seen",
    )
    last_call_at = WhenColumn(orderable=True, verbose_name="Last call")

    row_fields = (
        "name",
        "risk_tier",
        "model__name",
        "model__baseline_version_id",
        "observed_version__version",
        "observed_version_label",
        "approved_version_id",
        "environment",
        "exposure",
        "write_access",
        "decision_making",
        "status",
        "last_seen_at",
        "seen_at",
        "team__name",
        "owner__username",
        "source",
        "gone_at",
        "last_call_at",
    )

    class Meta(KeysetTable.Meta):
        model = m.Deployment
        fields = (
            "name",
            "risk_tier",
            "model",
            "observed_version",
            "baseline",
            "environment",
            "exposure",
            "flags",
            "status",
            "team",
            "owner",
            "source",
            "last_seen_at",
            "last_call_at",
        )

    def render_observed_version(self, record):
        if record.observed_version is None:
            if record.observed_version_label:
                # The runtime names a version the registry does not have.
                return _joined(
                    record.observed_version_label, _badge("unregistered", "warning")
                )
            return "—"
        text = record.observed_version.version
        if record.version_drift:
            return _joined(text, _badge("drift", "warning"))
        return text

    def render_baseline(self, record):
        label = getattr(record, "baseline_label", None)
        if not label:
            return "—"
        if record.approved_version_id is not None:
            # The committee pinned this deployment to it (else it is the model's baseline).
            return _joined(label, _badge("pinned", "secondary"))
        return label

    def render_risk_tier(self, value):
        return tier_badge(value)

    def render_flags(self, record):
        return _flags(
            record.exposure == m.Deployment.Exposure.EXTERNAL,
            bool(record.write_access),
            bool(record.decision_making),
        )

    def render_owner(self, record):
        return (
            record.owner.get_username()
            if record.owner
            else _badge("no owner", "danger")
        )


class IdentityTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    kind = tables.Column()
    provider = tables.Column()
    status = LiveStatusColumn(is_silent=querysets.identity_is_silent)
    team = tables.Column(linkify=True)
    owner = tables.Column(empty_values=())
    issued_at = WhenColumn(verbose_name="Issued", fmt="%Y-%m-%d")
    last_used_at = WhenColumn(verbose_name="Last used", fmt="%Y-%m-%d")
    expires_at = WhenColumn(verbose_name="Expires", fmt="%Y-%m-%d")
    source = SourceColumn()
    updated_at = WhenColumn(
        orderable=True,
        verbose_name="Updated",
    )

    row_fields = (
        "name",
        "kind",
        "provider",
        "status",
        "seen_at",
        "team__name",
        "owner__username",
        "issued_at",
        "last_used_at",
        "expires_at",
        "source",
        "gone_at",
        "updated_at",
    )

    class Meta(KeysetTable.Meta):
        model = m.NonHumanIdentity
        fields = (
            "name",
            "kind",
            "provider",
            "status",
            "team",
            "owner",
            "issued_at",
            "last_used_at",
            "expires_at",
            "source",
            "updated_at",
        )

    def render_owner(self, record):
        if record.owner:
            return record.owner.get_username()
        # The ownerless rule (querysets.ownerless_q): a team alone is not an accountable person.
        return _badge("no owner", "danger")
