"""The pricing engine, per billing type, with its edge cases. Numbers are what a tenant pays."""
import pytest

from app.catalog.pricing import Usage, actual, count_tokens, estimate, message_tokens, parse_prices
from app.catalog.seed import MODELS
from app.core.errors import InvalidInput


def test_per_request_is_flat():
    assert estimate("PER_REQUEST", {"credits": 300}, {"prompt": "anything"}).credits == 300


class TestPerImage:
    prices = {"credits": 20, "by_resolution": {"2K": 20, "4K": 40}}

    def test_counts_images_and_prices_the_resolution(self):
        quote = estimate("PER_IMAGE", self.prices, {"image_size": "4K", "n": 3})
        assert quote.credits == 120 and quote.breakdown["resolution"] == "4K"

    def test_unknown_resolution_takes_the_nearest_by_pixels(self):
        prices = {"credits": 5, "by_resolution": {"1024x1024": 10, "2048x2048": 30}}
        assert estimate("PER_IMAGE", prices, {"size": "1200x1200"}).credits == 10
        assert estimate("PER_IMAGE", prices, {"size": "1900x1900"}).credits == 30
        assert estimate("PER_IMAGE", prices, {"size": "3K"}).credits == 5  # not a resolution: default price

    def test_aspect_ratio_size_uses_the_default_price(self):
        assert estimate("PER_IMAGE", self.prices, {"size": "16:9"}).credits == 20

    def test_max_images_is_held_and_only_delivered_images_are_charged(self):
        params = {"max_images": 4, "image_size": "2K"}
        assert estimate("PER_IMAGE", self.prices, params).credits == 80
        assert actual("PER_IMAGE", self.prices, params, Usage(images=3)).credits == 60

    def test_n_out_of_range_is_refused(self):
        with pytest.raises(InvalidInput):
            estimate("PER_IMAGE", self.prices, {"n": 0})
        with pytest.raises(InvalidInput):
            estimate("PER_IMAGE", self.prices, {"n": "2"})


class TestDurations:
    def test_per_second_bills_requested_seconds_rounded_up(self):
        prices = {"credits_per_second": 60, "default_seconds": 8}
        assert estimate("PER_SECOND", prices, {"duration": 4.2}).credits == 300
        assert estimate("PER_SECOND", prices, {}).credits == 480

    def test_per_second_zero_result_duration_bills_the_request(self):
        prices = {"credits_per_second": 10, "default_seconds": 5}
        assert actual("PER_SECOND", prices, {"duration": 6}, Usage(seconds=0)).credits == 60
        assert actual("PER_SECOND", prices, {"duration": 6}, Usage(seconds=4)).credits == 40

    tiers = {"tiers": {"720p_5": 50, "720p_10": 90, "1080p_5": 80}}

    def test_tiers_pick_the_smallest_tier_that_fits(self):
        assert estimate("DURATION_RESOLUTION", self.tiers, {"duration": 5, "resolution": "720p"}).credits == 50
        assert estimate("DURATION_RESOLUTION", self.tiers, {"duration": 7, "resolution": "720p"}).credits == 90

    def test_beyond_the_longest_tier_is_pro_rata(self):
        quote = estimate("DURATION_RESOLUTION", self.tiers, {"duration": 15, "resolution": "720p"})
        assert quote.credits == 135 and quote.breakdown["pro_rata"]

    def test_unknown_resolution_uses_the_nearest(self):
        assert estimate("DURATION_RESOLUTION", self.tiers, {"duration": 5, "resolution": "1440p"}).credits == 80

    def test_linear_per_second(self):
        prices = {"per_second": {"720p": 20, "1080p": 35}}
        assert estimate("DURATION_RESOLUTION", prices, {"duration": 4, "resolution": "1080p"}).credits == 140
        assert estimate("DURATION_RESOLUTION", prices, {}).credits == 100  # 720p default, 5 s default

    def test_duration_mode(self):
        prices = {"per_second": {"std": 10, "pro": 20}, "default_mode": "std"}
        assert estimate("DURATION_MODE", prices, {"duration": 10, "mode": "pro"}).credits == 200
        with pytest.raises(InvalidInput, match="mode must be one of"):
            estimate("DURATION_MODE", prices, {"mode": "turbo"})

    def test_bad_durations_are_refused(self):
        for bad in (-1, "5", 10_000, True):
            with pytest.raises(InvalidInput):
                estimate("PER_SECOND", {"credits_per_second": 1}, {"duration": bad})


class TestCharactersAndTokens:
    def test_per_character_rounds_up_per_block(self):
        prices = {"credits": 10, "per_characters": 1000}
        assert estimate("PER_CHARACTER", prices, {"input": "a" * 1000}).credits == 10
        assert estimate("PER_CHARACTER", prices, {"input": "a" * 1001}).credits == 20

    def test_zero_characters_cost_the_minimum(self):
        assert estimate("PER_CHARACTER", {"credits": 10}, {"input": ""}).credits == 0
        assert estimate("PER_CHARACTER", {"credits": 10, "minimum_credits": 2}, {}).credits == 2

    def test_cjk_text_counts_a_token_per_character(self):
        assert count_tokens("你好世界") == 4
        assert count_tokens("hello world!") == 3
        assert message_tokens([{"role": "user", "content": "你好"}]) == 6

    def test_per_token_holds_max_tokens_and_settles_usage(self):
        prices = {"input_per_1k": 2, "output_per_1k": 8}
        params = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 1000}
        assert estimate("PER_TOKEN", prices, params).credits == 9  # ceil((104*2 + 1000*8)/1000)
        assert actual("PER_TOKEN", prices, params, Usage(input_tokens=104, output_tokens=50)).credits == 1

    def test_actual_never_exceeds_the_estimate_nor_goes_negative(self):
        prices = {"input_per_1k": 2, "output_per_1k": 8}
        params = {"messages": [], "max_tokens": 10}
        charged = actual("PER_TOKEN", prices, params, Usage(input_tokens=10_000, output_tokens=10_000))
        assert charged.credits == estimate("PER_TOKEN", prices, params).credits
        assert charged.breakdown["capped_at_estimate"] == charged.credits
        assert actual("PER_TOKEN", prices, params, Usage(input_tokens=0, output_tokens=0)).credits == 0


def test_operation_mode_multiplies_by_percent_rounding_up():
    prices = {"operations": {"imagine": 40, "upscale": 15}, "mode_percent": {"relax": 50, "fast": 100, "turbo": 200}}
    assert estimate("OPERATION_MODE", prices, {}).credits == 40
    assert estimate("OPERATION_MODE", prices, {"operation": "upscale", "mode": "relax"}).credits == 8
    assert estimate("OPERATION_MODE", prices, {"operation": "imagine", "mode": "turbo"}).credits == 80
    with pytest.raises(InvalidInput, match="operation must be one of"):
        estimate("OPERATION_MODE", prices, {"operation": "blend"})


@pytest.mark.parametrize("billing_type,prices", [
    ("PER_REQUEST", {"credits": -1}),
    ("PER_IMAGE", {"credits": 1, "by_resolution": {"2K": -5}}),
    ("PER_TOKEN", {"input_per_1k": 1.5, "output_per_1k": 1}),
    ("DURATION_RESOLUTION", {}),
    ("DURATION_RESOLUTION", {"tiers": {"720p": 10}}),
    ("DURATION_MODE", {"per_second": {"std": 1}, "default_mode": "pro"}),
    ("PER_CHARACTER", {"credits": 1, "per_characters": 0}),
    ("NOT_A_TYPE", {}),
    ("PER_REQUEST", {"credits": 1, "surprise": 2}),
])
def test_malformed_price_rules_are_refused(billing_type, prices):
    with pytest.raises(InvalidInput):
        parse_prices(billing_type, prices)


def test_every_seeded_model_has_a_valid_rule_and_a_positive_default_estimate():
    for spec in MODELS:
        parse_prices(spec["billing_type"], spec["prices"])
        params = {"input": "Hello there", "messages": [{"role": "user", "content": "hi"}]}
        assert estimate(spec["billing_type"], spec["prices"], params).credits > 0, spec["model_id"]
