"""A CJK font for maps, so 清波街道 renders as text and not as boxes.

The font is Noto Sans CJK SC (SIL Open Font License) shipped by the ``mplfonts`` package.
Importing this module changes nothing: :func:`cjk_rc` is a context in which figures are
drawn (and saved) with the font, and :func:`font` gives explicit ``FontProperties``.

PDF: the font is a CFF-flavoured OpenType file. Matplotlib's Type 42 path would embed
the CFF subset as a TrueType ``FontFile2`` stream, which Acrobat rejects (matplotlib issue
#2869), so PDFs use Type 3 (``pdf.fonttype: 3``): glyphs are subset (a map PDF is tens of kB,
not the 16 MB font), valid in every reader; CJK text is drawn, not selectable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from ._errors import DataError

CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"
FALLBACK_FAMILY = "DejaVu Sans"  # matplotlib's own font, for the odd glyph Noto lacks
PDF_FONTTYPE = 3  # see the module docstring: Type 42 + CFF gives broken PDFs


def cjk_font_path() -> Path:
    """Path of the Noto Sans CJK SC file inside the installed ``mplfonts`` package."""
    try:
        import mplfonts
    except ImportError:
        raise DataError("maps need the `mplfonts` package (Noto Sans CJK SC) for Chinese labels",
                        hints=("pip install mplfonts",)) from None
    path = Path(mplfonts.__file__).resolve().parent / "fonts" / CJK_FONT_FILE
    if not path.is_file():
        raise DataError(f"{path}: font file missing from the mplfonts package",
                        hints=("reinstall mplfonts: pip install --force-reinstall mplfonts",))
    return path


@cache
def register_cjk_font() -> str:
    """Add the CJK font to matplotlib's font manager (once); return its family name."""
    from matplotlib import font_manager

    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def font(size: float | None = None, weight: str = "normal") -> object:
    """Explicit ``FontProperties`` for the CJK font (with the fallback family)."""
    from matplotlib.font_manager import FontProperties

    return FontProperties(family=[register_cjk_font(), FALLBACK_FAMILY], size=size, weight=weight)


@contextmanager
def cjk_rc() -> Iterator[None]:
    """Draw and save figures inside this block with the CJK font (rcParams restored after)."""
    import matplotlib

    family = register_cjk_font()
    with matplotlib.rc_context({
        "font.family": [family, FALLBACK_FAMILY],
        "axes.unicode_minus": False,  # U+2212 is not in every CJK font; use the ASCII hyphen
        "pdf.fonttype": PDF_FONTTYPE,
        "pdf.compression": 9,
        "svg.hashsalt": "siting",
    }):
        yield
