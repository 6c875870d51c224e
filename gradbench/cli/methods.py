"""``gradbench methods``: every method of the registry, where it comes from, and whether it
can run here."""

from __future__ import annotations

from .common import EXIT_OK, add_plugin_option, add_verb


def add_parser(sub) -> None:
    p = add_verb(
        sub, "methods", help="list every method: provider, kind, device, available here",
        description="List every method the suite, check, train and ab can use: gradbench's, "
        "the peers' and the plugins' (installed distributions' entry points in the group "
        "gradbench.methods, and --plugin modules), each with its provider, kind, device, "
        "whether it can run here (and if not, why and the command that installs it), and a "
        "plugin's distribution and version. Plugins that could not be loaded are listed "
        "after, with why.")
    add_plugin_option(p)
    p.set_defaults(func=main)


def rows() -> list[tuple[str, ...]]:
    """(name, provider, kind, device, plugin, available here) for every registered method:
    a plugin's distribution and version ("" for a built-in method); "yes", or why not."""
    from .. import methods

    out = []
    for m in methods.REGISTRY.values():
        why = m.unavailable_reason()
        plugin = " ".join(filter(None, (m.plugin, m.plugin_version)))
        out.append((m.name, m.provider, m.kind, m.device, plugin or "-",
                    "yes" if why is None else why))
    return out


def main(args) -> int:
    from .. import methods

    table = [("method", "provider", "kind", "device", "plugin", "available here"), *rows()]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        print("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[5]]))
    broken = [p for p in methods.PLUGINS if p.error is not None]
    if broken:
        print("\nplugins not loaded (none of their methods is registered):")
        for p in broken:
            print(f"  {p.error}")
    return EXIT_OK
