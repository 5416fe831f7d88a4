"""The 31 languages of Fun-ASR-MLT-Nano-2512, and the three of Fun-ASR-Nano-2512.

Users pick a language by ISO code and see its `label`; the model's prompt wants the
Chinese name it was trained with ("语音转写成英文"). MLT-Nano has no language detection worth
trusting (FunASR issue 2747: "auto" on Thai gave Chinese), so the language is always told.
Neither model covers German, French, Spanish, Italian or Russian.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 (or 639-3 where there is no two-letter code)
    english_name: str
    native_name: str
    prompt_name: str  # the name the model's prompt expects

    @property
    def label(self) -> str:
        """The native name, with the English one beside it where they differ ("ไทย (Thai)"):
        a desktop without CJK, Thai or Devanagari fonts draws those names as empty boxes."""
        if self.native_name == self.english_name:
            return self.native_name
        return f"{self.native_name} ({self.english_name})"


LANGUAGES: tuple[Language, ...] = (
    Language("zh", "Chinese", "中文", "中文"),
    Language("en", "English", "English", "英文"),
    Language("yue", "Cantonese", "粵語", "粤语"),
    Language("ja", "Japanese", "日本語", "日文"),
    Language("ko", "Korean", "한국어", "韩文"),
    Language("vi", "Vietnamese", "Tiếng Việt", "越南语"),
    Language("id", "Indonesian", "Bahasa Indonesia", "印尼语"),
    Language("th", "Thai", "ไทย", "泰语"),
    Language("ms", "Malay", "Bahasa Melayu", "马来语"),
    Language("fil", "Filipino", "Filipino", "菲律宾语"),
    Language("ar", "Arabic", "العربية", "阿拉伯语"),
    Language("hi", "Hindi", "हिन्दी", "印地语"),
    Language("bg", "Bulgarian", "Български", "保加利亚语"),
    Language("hr", "Croatian", "Hrvatski", "克罗地亚语"),
    Language("cs", "Czech", "Čeština", "捷克语"),
    Language("da", "Danish", "Dansk", "丹麦语"),
    Language("nl", "Dutch", "Nederlands", "荷兰语"),
    Language("et", "Estonian", "Eesti", "爱沙尼亚语"),
    Language("fi", "Finnish", "Suomi", "芬兰语"),
    Language("el", "Greek", "Ελληνικά", "希腊语"),
    Language("hu", "Hungarian", "Magyar", "匈牙利语"),
    Language("ga", "Irish", "Gaeilge", "爱尔兰语"),
    Language("lv", "Latvian", "Latviešu", "拉脱维亚语"),
    Language("lt", "Lithuanian", "Lietuvių", "立陶宛语"),
    Language("mt", "Maltese", "Malti", "马耳他语"),
    Language("pl", "Polish", "Polski", "波兰语"),
    Language("pt", "Portuguese", "Português", "葡萄牙语"),
    Language("ro", "Romanian", "Română", "罗马尼亚语"),
    Language("sk", "Slovak", "Slovenčina", "斯洛伐克语"),
    Language("sl", "Slovenian", "Slovenščina", "斯洛文尼亚语"),
    Language("sv", "Swedish", "Svenska", "瑞典语"),
)

_BY_CODE = {language.code: language for language in LANGUAGES}
# Common alternative codes people type, so `--language tl` or `zh-CN` still works.
_ALIASES = {"tl": "fil", "zh-cn": "zh", "zh-hans": "zh", "cmn": "zh", "zh-hk": "yue", "in": "id"}


def language_for(code: str) -> Language:
    """The language for an ISO code (case-insensitive, a few aliases accepted)."""
    key = code.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    try:
        return _BY_CODE[key]
    except KeyError:
        known = ", ".join(language.code for language in LANGUAGES)
        raise ValueError(f"Unknown language {code!r}. Choose one of: {known}.") from None


# Fun-ASR-Nano-2512: Chinese (its 7 dialects — Wu, Cantonese, Min, Hakka, Gan, Xiang, Jin —
# and regional accents are recognised as Chinese), English and Japanese.
NANO_LANGUAGE_CODES = ("zh", "en", "ja")
_MODEL_LANGUAGE_CODES = {"fun-asr-nano": NANO_LANGUAGE_CODES}


def languages_of(model: str) -> tuple[Language, ...]:
    """The languages of a speech model, by its name in `core.models.store` (MLT-Nano's 31
    for a name not listed here)."""
    codes = _MODEL_LANGUAGE_CODES.get(model)
    if codes is None:
        return LANGUAGES
    return tuple(language for language in LANGUAGES if language.code in codes)
