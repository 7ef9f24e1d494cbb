"""``mobilecnn download tiny-imagenet`` and ``mobilecnn prepare``."""

from __future__ import annotations

import argparse
import sys
import warnings

from ..limits import IMAGE_SIZE
from .common import CLIError, bounded_int, positive_int
from .options import add_progress_option, path_argument, show_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's subcommands to the parser."""
    download = subparsers.add_parser(
        "download",
        help="download a data set (tiny-imagenet)",
        description="Download TinyImageNet into ROOT/tiny-imagenet-200: md5-checked before "
                    "extraction, extracted safely, idempotent (no network if already there).",
    )
    download.add_argument("dataset", choices=["tiny-imagenet"], help="the data set to fetch")
    download.add_argument("--root", required=True, type=path_argument,
                          help="folder to put tiny-imagenet-200/ in (created if needed)")
    download.add_argument("--url", default=None,
                          help="archive URL (default: the official cs231n URL)")
    download.add_argument("--md5", default=None,
                          help="expected md5 of the archive (default: the official one; "
                               "'none' skips the check)")
    add_progress_option(download)
    download.set_defaults(func=run_download)

    prepare = subparsers.add_parser(
        "prepare",
        help="decode a data set once into a uint8 cache for fast training",
        description="Decode the JPEGs of a split into one memory-mappable uint8 file. Default "
                    "location: DATA/.mobilecnn_cache/ (the only thing written under DATA). Up "
                    "to date caches are reused; stale or truncated ones are rebuilt.",
    )
    prepare.add_argument("--data", required=True, type=path_argument,
                         help="the data set folder (the one with wnids.txt, or its parent, or a "
                              "folder with train/<class>/ images)")
    prepare.add_argument("--split", choices=["train", "val", "test", "all"], default="all",
                         help="split to decode; all = train and val, and test if present "
                              "(default all)")
    prepare.add_argument("--skip-bad", action="store_true",
                         help="leave out unreadable images (reports how many) instead of failing")
    prepare.add_argument("--cache-dir", type=path_argument, default=None,
                         help="write the cache here instead of DATA/.mobilecnn_cache/ "
                              "(for read-only data)")
    prepare.add_argument("--workers", type=positive_int, default=None,
                         help="decoding processes (default: all cores)")
    prepare.add_argument("--image-size", type=bounded_int(IMAGE_SIZE), default=None,
                         help="resize every image to SIZE x SIZE (default: keep; all images "
                              "must then have one size)")
    add_progress_option(prepare)
    prepare.set_defaults(func=run_prepare)


def run_download(args: argparse.Namespace) -> int:
    from ..data.download import OFFICIAL_MD5, OFFICIAL_URL, DownloadError, download_tiny_imagenet

    md5 = OFFICIAL_MD5 if args.md5 is None else (None if args.md5.lower() == "none" else args.md5)
    try:
        folder = download_tiny_imagenet(args.root, url=args.url or OFFICIAL_URL, md5=md5,
                                        progress=show_progress(args))
    except DownloadError as error:
        raise CLIError(str(error)) from None
    print(f"TinyImageNet is in {folder}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.cache import load_cache, prepare_cache
    from ..data.tinyimagenet import TinyImageNet

    if args.split == "all":
        splits = ["train", "val"]
        try:
            TinyImageNet(args.data, "test")
            splits.append("test")
        except (FileNotFoundError, ValueError):
            pass
    else:
        splits = [args.split]
    for split in splits:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = prepare_cache(args.data, split, cache_dir=args.cache_dir,
                                 skip_bad=args.skip_bad, num_workers=args.workers,
                                 progress=show_progress(args), image_size=args.image_size)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        decoded = load_cache(path, verify=False)  # prepare_cache verified it
        size = path.stat().st_size / 2**20
        skipped = f", skipped {len(decoded.skipped)} unreadable" if decoded.skipped else ""
        print(f"{split}: {len(decoded)} images {tuple(decoded.images.shape[1:])}, "
              f"{len(decoded.classes)} classes{skipped} -> {path} ({size:.1f} MiB)")
    return 0
