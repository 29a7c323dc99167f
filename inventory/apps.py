from __future__ import annotations

from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = "Inventory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        _memoise_tables2_signatures()


def _memoise_tables2_signatures() -> None:
    """django-tables2 calls inspect.signature() for every cell it renders (2,500 times for a
    50-row page), which the bench measured as the largest single cost of a list page. The
    answer depends only on the function, so remember it per function."""
    import django_tables2.utils as tables2_utils

    original = tables2_utils.signature
    if getattr(original, "_runproof_memoised", False):
        return
    cache: dict[object, tuple] = {}

    def signature(fn):
        key = (getattr(fn, "__func__", fn), hasattr(fn, "__self__"))
        try:
            return cache[key]
        except KeyError:
            result = cache[key] = original(fn)
            return result
        except TypeError:  # unhashable callable: not worth caching
            return original(fn)

    signature._runproof_memoised = True
    tables2_utils.signature = signature
