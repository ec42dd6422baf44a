"""The models waule-api serves (docs/gateway-contract.md), with starting prices and capabilities.

`flask catalog seed` inserts the ones missing and never overwrites a model an operator edited.
Prices are in credits; operators tune them in the dashboard.
"""

IMAGE_RATIOS = ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9"]
VIDEO_RATIOS = ["16:9", "9:16", "1:1"]


# The gateway routes (docs/gateway-contract.md); Sora models take the chat-shaped route for both kinds.
IMAGES, VIDEOS, SPEECH, CHAT = "/images/generations", "/videos/generations", "/audio/speech", "/chat/completions"
SORA, MIDJOURNEY = "/sora/chat/completions", "/midjourney/imagine"
UPSCALE, COMMERCIAL = "/videos/upscale", "/videos/commercial"


def _image(model_id, name, provider, prices, *, billing="PER_IMAGE", sizes=("2K", "4K"), refs=10, max_images=15,
           route=IMAGES):
    return {"model_id": model_id, "kind": "image", "display_name": name, "provider": provider, "route": route,
            "capabilities": {"ratios": IMAGE_RATIOS, "image_sizes": list(sizes), "max_reference_images": refs,
                             "max_images": max_images},
            "billing_type": billing, "prices": prices}


def _video(model_id, name, provider, billing, prices, *, resolutions, durations, refs=2, modes=None, route=VIDEOS):
    capabilities = {"ratios": VIDEO_RATIOS, "resolutions": resolutions, "durations": durations,
                    "max_reference_images": refs}
    if modes:
        capabilities["modes"] = modes
    return {"model_id": model_id, "kind": "video", "display_name": name, "provider": provider, "route": route,
            "capabilities": capabilities, "billing_type": billing, "prices": prices}


def _speech(model_id, name, provider, per_1000):
    return {"model_id": model_id, "kind": "audio", "display_name": name, "provider": provider, "route": SPEECH,
            "capabilities": {"max_characters": 10000, "speed": [0.5, 2.0],
                             "formats": ["mp3", "opus", "aac", "flac", "wav", "pcm"]},
            "billing_type": "PER_CHARACTER", "prices": {"credits": per_1000, "per_characters": 1000,
                                                        "minimum_credits": 1}}


def _chat(model_id, name, input_per_1k, output_per_1k):
    return {"model_id": model_id, "kind": "chat", "display_name": name, "provider": "Gemini", "route": CHAT,
            "capabilities": {"context_tokens": 1_000_000, "max_output_tokens": 65536, "streaming": True},
            "billing_type": "PER_TOKEN", "prices": {"input_per_1k": input_per_1k, "output_per_1k": output_per_1k,
                                                    "default_output_tokens": 2048}}


MODELS = [
    _image("doubao-seedream-4-0-250828", "Seedream 4.0", "Doubao", {"credits": 20, "by_resolution": {"2K": 20, "4K": 40}}),
    _image("doubao-seedream-4-5-251128", "Seedream 4.5", "Doubao", {"credits": 25, "by_resolution": {"2K": 25, "4K": 50}}),
    _image("gemini-2.5-flash-image", "Gemini 2.5 Flash Image", "Gemini", {"credits": 30}, sizes=("1K",), refs=3,
           max_images=1),
    _image("gemini-3-pro-image-preview", "Gemini 3 Pro Image", "Gemini",
           {"credits": 40, "by_resolution": {"1K": 40, "2K": 40, "4K": 80}}, sizes=("1K", "2K", "4K"), refs=14,
           max_images=1),
    _image("qwen-image-edit-plus", "Qwen Image Edit Plus", "Wanx/Qwen", {"credits": 15}, sizes=("1K",), refs=3,
           max_images=1),
    _image("image-01", "MiniMax Image-01", "MiniMax", {"credits": 10}, sizes=("1K",), refs=1, max_images=9),
    _image("sora-image", "Sora Image", "Sora", {"credits": 30}, sizes=("1K",), refs=1, max_images=1, route=SORA),
    _video("MiniMax-Hailuo-2.3", "Hailuo 2.3", "MiniMax", "DURATION_RESOLUTION",
           {"tiers": {"768p_6": 150, "768p_10": 280, "1080p_6": 250}, "default_resolution": "768p",
            "default_seconds": 6}, resolutions=["768p", "1080p"], durations=[6, 10]),
    _video("MiniMax-Hailuo-02", "Hailuo 02", "MiniMax", "DURATION_RESOLUTION",
           {"tiers": {"768p_6": 120, "768p_10": 220, "1080p_6": 200}, "default_resolution": "768p",
            "default_seconds": 6}, resolutions=["768p", "1080p"], durations=[6, 10]),
    _video("viduq2-pro", "Vidu Q2 Pro", "Vidu", "DURATION_RESOLUTION",
           {"per_second": {"720p": 20, "1080p": 35}, "default_resolution": "720p", "default_seconds": 5},
           resolutions=["720p", "1080p"], durations=[1, 2, 3, 4, 5, 6, 7, 8]),
    _video("viduq2-turbo", "Vidu Q2 Turbo", "Vidu", "DURATION_RESOLUTION",
           {"per_second": {"720p": 12, "1080p": 20}, "default_resolution": "720p", "default_seconds": 5},
           resolutions=["720p", "1080p"], durations=[1, 2, 3, 4, 5, 6, 7, 8]),
    _video("wan2.2-animate-mix", "Wan 2.2 Animate Mix", "Wanx/Qwen", "DURATION_MODE",
           {"per_second": {"wan-std": 20, "wan-pro": 35}, "default_mode": "wan-std", "default_seconds": 5},
           resolutions=["720p"], durations=[5, 10], modes=["wan-std", "wan-pro"]),
    _video("veo3.1", "Veo 3.1", "Veo", "PER_SECOND", {"credits_per_second": 60, "default_seconds": 8},
           resolutions=["720p", "1080p"], durations=[4, 6, 8]),
    _video("veo3.1-pro", "Veo 3.1 Pro", "Veo", "PER_SECOND", {"credits_per_second": 120, "default_seconds": 8},
           resolutions=["720p", "1080p"], durations=[4, 6, 8]),
    _video("sora-video-landscape-10s", "Sora Landscape 10 s", "Sora", "PER_REQUEST", {"credits": 300},
           resolutions=["720p"], durations=[10], refs=1, route=SORA),
    _video("sora-2", "Sora 2", "Sora", "DURATION_RESOLUTION",
           {"tiers": {"720p_10": 300, "720p_15": 450}, "default_resolution": "720p", "default_seconds": 10},
           resolutions=["720p"], durations=[10, 15], refs=1, route=SORA),
    # Operations on videos rather than models of their own: priced per second of the result.
    _video("video-upscale", "Video upscale", "waule-api", "PER_SECOND",
           {"credits_per_second": 10, "default_seconds": 10}, resolutions=["1080p", "2160p"], durations=[], refs=0,
           route=UPSCALE),
    _video("video-commercial", "Commercial video", "waule-api", "PER_SECOND",
           {"credits_per_second": 30, "default_seconds": 10}, resolutions=["720p"], durations=[5, 10, 15], refs=9,
           route=COMMERCIAL),
    _speech("speech-2.6-hd", "MiniMax Speech 2.6 HD", "MiniMax", 20),
    _speech("speech-2.6-turbo", "MiniMax Speech 2.6 Turbo", "MiniMax", 12),
    _speech("cosyvoice-v2", "CosyVoice v2", "CosyVoice", 8),
    _chat("gemini-2.5-pro", "Gemini 2.5 Pro", 2, 8),
    _chat("gemini-3-pro-preview", "Gemini 3 Pro", 3, 12),
    {"model_id": "midjourney-v7", "kind": "midjourney", "display_name": "Midjourney v7", "provider": "Midjourney",
     "route": MIDJOURNEY,
     "capabilities": {"operations": ["imagine", "upscale", "variation", "reroll", "zoom", "pan"],
                      "modes": ["relax", "fast", "turbo"]},
     "billing_type": "OPERATION_MODE",
     "prices": {"operations": {"imagine": 40, "upscale": 20, "variation": 40, "reroll": 40, "zoom": 40, "pan": 40},
                "mode_percent": {"relax": 50, "fast": 100, "turbo": 200}, "default_operation": "imagine",
                "default_mode": "fast"}},
]
