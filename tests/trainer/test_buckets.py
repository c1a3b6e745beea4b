"""Bucket maths against hand-computed Kohya cases (docs/ANCHORS.md section 3)."""

from types import SimpleNamespace

import pytest

from trainer.data.buckets import (
    BucketChoice,
    BucketError,
    BucketSpec,
    assign_buckets,
    make_buckets,
    select_bucket,
    select_bucket_no_upscale,
)

SD15_BUCKETS = [
    (256, 832),
    (256, 896),
    (256, 960),
    (256, 1024),
    (320, 704),
    (320, 768),
    (384, 640),
    (448, 576),
    (512, 512),
    (576, 448),
    (640, 384),
    (704, 320),
    (768, 320),
    (832, 256),
    (896, 256),
    (960, 256),
    (1024, 256),
]


def test_the_17_buckets_of_512x512():
    assert make_buckets((512, 512), 256, 1024, 64) == SD15_BUCKETS


def test_gui_max_bucket_2048_gives_the_same_buckets_at_512():
    # Wider buckets than 1024 would be shorter than 256 px, so none are added.
    assert make_buckets((512, 512), 256, 2048, 64) == SD15_BUCKETS


def test_buckets_keep_about_the_max_area_and_step_multiples():
    for w, h in make_buckets((1024, 1024), 256, 2048, 64):
        assert w % 64 == 0 and h % 64 == 0
        assert w * h <= 1024 * 1024


@pytest.mark.parametrize(
    "size, bucket, resized",
    [
        # An image that is a bucket keeps its size.
        ((512, 512), (512, 512), (512, 512)),
        # ar 1.5: 640x384 (1.667) is nearer than 576x448 (1.286); ar < 1.667 so
        # scale = 640/768, height int(512*640/768 + 0.5) = int(427.17) = 427.
        ((768, 512), (640, 384), (640, 427)),
        # ar 0.333: 256x832 (0.308) beats 320x768 (0.417); ar > 0.308 so
        # scale = 832/900, width int(300*832/900 + 0.5) = int(277.83) = 277.
        ((300, 900), (256, 832), (277, 832)),
        # ar 1.667 equals 640x384 exactly: not wider, so scale by width 640/1000.
        ((1000, 600), (640, 384), (640, 384)),
        # small images are enlarged to cover the bucket: 100x100 -> 512x512.
        ((100, 100), (512, 512), (512, 512)),
    ],
)
def test_normal_mode_choices(size, bucket, resized):
    assert select_bucket(*size, SD15_BUCKETS) == BucketChoice(bucket, resized)


def test_normal_mode_tie_takes_the_first_bucket_in_sorted_order():
    # 2:1 lies exactly between 1:1 (512x512) and 3:1 (768x256).
    choice = select_bucket(1000, 500, [(512, 512), (768, 256)])
    assert choice.bucket == (512, 512)
    assert choice.resized == (1024, 512)


@pytest.mark.parametrize(
    "size, bucket, resized",
    [
        # 1024x768 > 512*512: rw = 591.2 -> 576, rh = 443.4 -> 384; by width 576/384 = 1.5,
        # by height 512/384 = 1.333 = ar: height wins, resized (int(384*4/3 + .5), 384).
        ((1024, 768), (512, 384), (512, 384)),
        # 600x812: rw = 440.1 -> 384 with height round(519.7) = 512 (ar .75, error .011);
        # rh = 595.6 -> 576 with width round(425.6) = 384 (ar .667): width wins,
        # resized (384, int(384/0.7389 + .5)) = (384, 520), bucket cut to (384, 512).
        ((600, 812), (384, 512), (384, 520)),
        # Smaller than the area: keeps its size, bucket cut down to multiples of 64.
        ((400, 300), (384, 256), (400, 300)),
    ],
)
def test_no_upscale_choices(size, bucket, resized):
    assert select_bucket_no_upscale(*size, 512 * 512, 64) == BucketChoice(bucket, resized)


def test_no_upscale_never_enlarges():
    for w, h in [(100, 700), (333, 257), (640, 640), (5000, 3000)]:
        choice = select_bucket_no_upscale(w, h, 512 * 512, 64)
        assert choice.resized[0] <= w and choice.resized[1] <= h
        assert choice.bucket[0] <= choice.resized[0] and choice.bucket[1] <= choice.resized[1]


def test_no_upscale_refuses_an_image_thinner_than_one_step():
    with pytest.raises(BucketError, match="at least 64 px"):
        select_bucket_no_upscale(50, 400, 512 * 512, 64)
    with pytest.raises(BucketError):
        select_bucket_no_upscale(10000, 10, 512 * 512, 64)


def test_buckets_off_cover_and_crop_to_max_resolution():
    spec = BucketSpec((512, 512), enable_bucket=False)
    # 1000x600 is scaled by 512/600 -> int(853.3 + .5) = 853 wide, then cropped.
    assert spec.choose(1000, 600) == BucketChoice((512, 512), (853, 512))
    assert spec.choose(200, 400) == BucketChoice((512, 512), (512, 1024))


def test_assign_buckets_in_item_order_for_each_mode():
    items = [SimpleNamespace(width=768, height=512), SimpleNamespace(width=400, height=300)]
    normal = assign_buckets(
        items,
        max_reso=(512, 512),
        enable_bucket=True,
        min_bucket_reso=256,
        max_bucket_reso=1024,
        bucket_reso_steps=64,
        bucket_no_upscale=False,
    )
    assert [c.bucket for c in normal] == [(640, 384), (576, 448)]
    no_up = assign_buckets(
        items,
        max_reso=(512, 512),
        enable_bucket=True,
        min_bucket_reso=256,
        max_bucket_reso=1024,
        bucket_reso_steps=64,
        bucket_no_upscale=True,
    )
    assert [c.bucket for c in no_up] == [(576, 384), (384, 256)]  # 1.5 kept exactly
    off = assign_buckets(
        items,
        max_reso=(512, 512),
        enable_bucket=False,
        min_bucket_reso=256,
        max_bucket_reso=1024,
        bucket_reso_steps=64,
        bucket_no_upscale=False,
    )
    assert [c.bucket for c in off] == [(512, 512), (512, 512)]


def test_assign_buckets_names_the_image_it_cannot_place():
    items = [SimpleNamespace(width=10, height=900, path="thin.png")]
    with pytest.raises(BucketError, match="thin.png"):
        assign_buckets(
            items,
            max_reso=(512, 512),
            enable_bucket=True,
            min_bucket_reso=256,
            max_bucket_reso=1024,
            bucket_reso_steps=64,
            bucket_no_upscale=True,
        )


def test_resized_always_covers_the_bucket():
    for w in range(64, 3000, 97):
        for h in range(64, 3000, 131):
            choice = select_bucket(w, h, SD15_BUCKETS)
            assert choice.resized[0] >= choice.bucket[0]
            assert choice.resized[1] >= choice.bucket[1]
