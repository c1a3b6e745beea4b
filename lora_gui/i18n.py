"""English and Japanese for the GUI's own words: tabs, buttons, the run panel.

Field labels and help texts are not here: they live once, in the config schema
(`FieldSpec.label` / `label_ja`, `help` / `help_ja`). Japanese tab and button names keep
the English word beside them, because the guides our users follow say "Foldersタブ" and
"Start traning".
"""

from __future__ import annotations

from typing import Any

from lora_gui.i18n_panels import PANEL_STRINGS
from lora_gui.i18n_queue import QUEUE_STRINGS

LANGS = ("en", "ja")
LANG_NAMES = {"en": "English", "ja": "日本語"}

_STRINGS: dict[str, tuple[str, str]] = {
    # Page and tabs
    "title": ("LoRA trainer", "LoRA学習"),
    "language": ("Language", "言語 (Language)"),
    "tab.Source Model": ("Source Model", "ソースモデル (Source Model)"),
    "tab.Folders": ("Folders", "フォルダ (Folders)"),
    "tab.Parameters": ("Parameters", "パラメータ (Parameters)"),
    "tab.Advanced": ("Advanced", "詳細 (Advanced)"),
    "tab.Samples": ("Samples", "サンプル (Samples)"),
    "more": ("More {group} settings", "{group}のその他の設定"),
    # Groups of fields (a group missing here shows its schema name)
    "group.Model": ("Model", "モデル"),
    "group.Save": ("Save", "保存"),
    "group.Folders": ("Folders", "フォルダ"),
    "group.Basic": ("Basic", "基本"),
    "group.Optimizer": ("Optimizer", "オプティマイザ"),
    "group.Resolution": ("Resolution and buckets", "解像度とバケット"),
    "group.Network": ("Network", "ネットワーク"),
    "group.Text encoder": ("Text encoder", "テキストエンコーダ"),
    "group.Captions": ("Captions", "キャプション"),
    "group.Data": ("Data and augmentation", "データと拡張"),
    "group.Memory": ("Memory and speed", "メモリと速度"),
    "group.Noise": ("Noise and loss", "ノイズと損失"),
    "group.Metadata": ("Metadata", "メタデータ"),
    "group.Loss": ("Loss", "損失"),
    "group.Resume": ("Save state and resume", "状態の保存と再開"),
    "group.Samples": ("Sample images", "サンプル画像"),
    "group.LoRA+": ("LoRA+", "LoRA+ の設定"),
    "group.Block LR": ("Learning rate per block", "ブロックごとの学習率 (Block LR)"),
    "group.LyCORIS": ("LyCORIS", "LyCORIS の設定"),
    "group.Saving": ("Saving", "保存のタイミング"),
    "group.Speed": ("Speed", "速度"),
    "group.Several GPUs": ("Several GPUs (accelerate)", "複数GPU (accelerate)"),
    # Source Model extras
    "quick_pick": ("Model Quick Pick", "モデルのクイック選択 (Model Quick Pick)"),
    "quick_pick.info": (
        "Pick a known model to fill the path, or custom to type your own.",
        "よく使うモデルを選ぶとパスが入ります。customなら自分で入力します。",
    ),
    "quick_pick.custom": ("custom", "custom(自分で指定)"),
    "quick_pick.demo": (
        "demo: the tiny test model (demo/model)",
        "demo: 動作確認用の小さなモデル (demo/model)",
    ),
    "model.empty": (
        ("Choose the base model: a diffusers folder, a .safetensors file or a Hugging Face id."),
        (
            "ベースモデルを選んでください(diffusers形式のフォルダ、.safetensorsファイル、"
            "またはHugging Face ID)。"
        ),
    ),
    "model.found": ("Found: {message}", "検出: {message}"),
    "model.label": ("{arch}{vpred} ({kind}, {size})", "{arch}{vpred}({kind}、{size})"),
    "model.vpred": (" v-prediction", " v予測 (v-prediction)"),
    "model.kind.diffusers": ("diffusers folder", "diffusers形式のフォルダ"),
    "model.kind.hub": ("Hugging Face cache", "Hugging Faceのキャッシュ"),
    "model.kind.single": ("single file", "単一ファイル"),
    "model.kind.file": ("single {ext} file", "単一の{ext}ファイル"),
    "model.path": ("Read from `{path}`", "読み込み元: `{path}`"),
    "model.sd2_file": (
        "v-prediction cannot be read from the weights: turn on v_parameterization for a 768-v model "
        "(SD 2.0-768, 2.1-768 and models made from them), leave it off for a 512-base model.",
        "v予測かどうかは重みから分かりません。768-vモデル(SD 2.0-768、2.1-768とその派生)なら"
        "v_parameterizationをオンに、512-baseモデルならオフにしてください。",
    ),
    "model.problem": ("Model problem: {message}", "モデルの問題: {message}"),
    # Presets
    "presets": ("Configuration file", "設定ファイル (Configuration file)"),
    "preset.choose": ("Preset", "プリセット"),
    "preset.load": ("Load preset", "読み込む"),
    "preset.name": ("Save as (name)", "保存する名前"),
    "preset.save": ("Save preset", "保存"),
    "preset.import": ("Import a Kohya GUI preset (.json)", "Kohya GUIのプリセットを読み込む (.json)"),
    "preset.shipped": ("{name} (shipped)", "{name}(付属)"),
    "preset.user": ("{name} (yours)", "{name}(自分用)"),
    "preset.loaded": ("Loaded **{name}**.", "**{name}** を読み込みました。"),
    "preset.kept": (
        "Settings the file does not set keep their current values (as in the Kohya GUI).",
        "ファイルに無い設定は今の値のままです(Kohya GUIと同じ)。",
    ),
    "preset.saved": (
        "Saved **{path}** (secrets such as tokens are never written).",
        "**{path}** に保存しました(トークンなどの秘密情報は保存しません)。",
    ),
    "preset.none": ("Choose a preset first.", "先にプリセットを選んでください。"),
    "preset.bad_name": ("The preset name {reason}.", "プリセット名が不正です: {reason}"),
    "preset.not_saved": ("Not saved; fix these first:", "保存できません。先に次を直してください:"),
    "preset.notes": ("Notes:", "メモ:"),
    "preset.note": ("{text}", "詳細(英語): {text}"),
    "preset.unusable": (
        "{field}: {value} cannot be used ({allowed}); the current value is kept",
        "{field}: {value} は使えません({allowed})。今の値のままにしました",
    ),
    "preset.json_suffix": (
        "must not end in .json; give just the name",
        "末尾に .json を付けないでください(名前だけを入力します)",
    ),
    # Folders summary
    "summary.title": ("Dataset summary", "データセットの概要"),
    "summary.choose_folder": (
        "Choose the image folder to see what will be trained.",
        "画像フォルダを選ぶと、学習する内容がここに表示されます。",
    ),
    "summary.fix_first": ("Fix these before training:", "学習の前に次を直してください:"),
    "summary.folder": ("Folder", "フォルダ"),
    "summary.repeats": ("Repeats", "繰り返し数"),
    "summary.images": ("Images", "画像"),
    "summary.no_caption": ("No caption", "キャプション無し"),
    "summary.reg": ("(regularisation)", "(正則化)"),
    "summary.totals": (
        (
            "**{images}** images ({reg} regularisation), **{steps_per_epoch}** steps "
            "per epoch x **{epochs}** epoch(s) = **{total_steps}** steps."
        ),
        (
            "画像 **{images}** 枚(正則化 {reg} 枚)、1エポック **{steps_per_epoch}** "
            "ステップ × **{epochs}** エポック = 合計 **{total_steps}** ステップ。"
        ),
    ),
    "summary.repeated": ("Images x repeats per epoch: **{n}**", "1エポックの画像×繰り返し数: **{n}**"),
    "summary.buckets": ("Buckets", "バケット"),
    "summary.saves": ("Files that will be saved", "保存されるファイル"),
    "summary.skipped": ("Skipped files", "使わないファイル"),
    "summary.warnings": ("Advice", "アドバイス"),
    "advice.missing_captions": (
        "{folder}: {missing} of {images} images have no caption file ({ext}); they are captioned "
        "with the class token '{name}'",
        "{folder}: {images}枚中{missing}枚にキャプションファイル ({ext}) がありません。"
        "クラストークン '{name}' をキャプションにします",
    ),
    "advice.few_repeats": (
        "One epoch is {total} images x repeats. Fine for a character; for a style the guide found "
        "5,000-10,000 works well (e.g. 100 images x 50-100 repeats).",
        "1エポックは画像×繰り返し数で{total}です。キャラクターなら十分ですが、画風(スタイル)には"
        "5,000〜10,000がよいとされています(例: 画像100枚×繰り返し50〜100)。",
    ),
    "advice.many_repeats": (
        "One epoch is {total:,} images x repeats, which makes long epochs; the guide found "
        "5,000-10,000 enough for a style. Lower the repeats in the folder names if the LoRA overtrains.",
        "1エポックは画像×繰り返し数で{total:,}と長めです。画風なら5,000〜10,000で足ります。"
        "過学習するならフォルダ名の繰り返し数を下げてください。",
    ),
    "advice.alpha_above_rank": (
        "Network Alpha ({alpha:g}) is larger than the rank ({dim}): the LoRA is scaled up and training "
        "becomes unstable. Try alpha between 1 and half the rank.",
        "Network Alpha ({alpha:g}) がランク ({dim}) より大きいため、LoRAが拡大されて学習が不安定に"
        "なります。alphaは1〜ランクの半分にしてください。",
    ),
    "advice.adafactor_warmup": (
        "Adafactor with LR warmup {warmup}% and the '{scheduler}' scheduler fails in the Kohya GUI: "
        "set LR warmup to 0, or choose the 'adafactor' LR scheduler.",
        "AdafactorでLR warmup {warmup}%と'{scheduler}'スケジューラの組み合わせはKohya GUIでは失敗します。"
        "LR warmupを0にするか、LRスケジューラに'adafactor'を選んでください。",
    ),
    "advice.skipped": ("skipped {path}: {reason}", "{path} は使いません: {reason}"),
    "advice.text": ("{text}", "注意(学習エンジンより): {text}"),
    "summary.unavailable": (
        "The dataset summary is not available: {message}",
        "データセットの概要を表示できません: {message}",
    ),
    # Run panel
    "run.start": ("Start training", "学習開始 (Start training)"),
    "run.stop": ("Stop", "停止 (Stop)"),
    "run.progress": ("Progress", "進捗"),
    "run.loss": ("Loss", "損失 (loss)"),
    "run.logs": ("Log", "ログ"),
    "run.files": ("Saved files", "保存されたファイル"),
    "run.samples": ("Sample images", "サンプル画像"),
    "run.sample_caption": ("Step {step}: {prompt}", "ステップ {step}: {prompt}"),
    "run.idle": (
        "Ready. Press **Start training** when the settings are done.",
        "準備完了。設定ができたら **学習開始** を押してください。",
    ),
    "run.not_started": (
        "Training did not start. Fix these first:",
        "学習は開始されていません。先に次を直してください:",
    ),
    "run.busy": (
        "A training run is already in progress. Wait for it to finish or press Stop.",
        "学習中です。終わるまで待つか、停止を押してください。",
    ),
    "run.starting": ("Starting: loading the model...", "開始中: モデルを読み込んでいます..."),
    "run.running": ("Training", "学習中"),
    "run.stopping": ("Stopping after the current step...", "現在のステップの後で停止します..."),
    "run.not_running": ("Nothing is running.", "実行中の学習はありません。"),
    "run.finished": ("Done: {path}", "完了: {path}"),
    "run.stopped": (
        "Stopped at step {step}. Saved: {path}",
        "ステップ {step} で停止しました。保存先: {path}",
    ),
    "run.failed": ("Training stopped with an error: {message}", "エラーで学習が止まりました: {message}"),
    "run.hint": ("What to do: {hint}", "対処法: {hint}"),
    "run.log_file": ("Details are in {path}", "詳細は {path} にあります"),
    "run.step_line": (
        ("Step **{step} / {total}** ({percent:.0f} %), epoch {epoch} / {epochs}, {speed}, {eta}"),
        ("ステップ **{step} / {total}**({percent:.0f} %)、エポック {epoch} / {epochs}、{speed}、{eta}"),
    ),
    "run.eta": ("about {eta} left", "残り約 {eta}"),
    "run.warnings": ("Warnings before the start:", "開始前の注意:"),
    "run.info": ("This run:", "今回の学習:"),
    "run.info_model": ("Model: {model}", "モデル: {model}"),
    "run.info_plan": (
        "{images} images, {steps} steps in {epochs} epoch(s)",
        "画像{images}枚、{epochs}エポックで{steps}ステップ",
    ),
    "run.warning": ("{text}", "注意(学習エンジンより): {text}"),
    "run.resume_with": (
        "To continue this run, set **{field}** ({where}) to `{path}` and press **Start training**.",
        "続きから学習するには、**{field}**({where})に `{path}` を入れて **学習開始** を押してください。",
    ),
    "run.resume_no_state": (
        "No training state was saved, so this run cannot be continued exactly. Turn on **{field}** "
        "({where}) to be able to resume the next run, or train on from the saved LoRA with **{weights}**.",
        "学習状態を保存していないため、この学習は正確には再開できません。次回再開できるようにするには"
        "**{field}**({where})をオンにしてください。保存されたLoRAから続けるなら **{weights}** に指定します。",
    ),
    "run.files_note": (
        "All files are saved in `{folder}`; the newest are offered here for download. "
        "Nothing on this page deletes a file.",
        "すべてのファイルは `{folder}` に保存されます。新しいものをここからダウンロードできます。"
        "このページからファイルが削除されることはありません。",
    ),
    "run.exit_code": (
        "{what} ended with exit code {rc} without saying why.",
        "{what}が理由を告げずに終了しました(終了コード {rc})。",
    ),
    "run.exit_hint": (
        "Read the log lines below; run the same preset with `python -m trainer --config` to see the "
        "full output.",
        "下のログを確認してください。同じプリセットを `python -m trainer --config` で実行すると"
        "全ての出力が見られます。",
    ),
    "run.what.training": ("Training", "学習"),
    "run.what.process": ("The training process", "学習プロセス"),
    "run.crashed": (
        "the trainer failed unexpectedly ({error})",
        "学習エンジンが予期せず失敗しました ({error})",
    ),
    "run.crashed_hint": (
        "This is a bug, not your settings. The console shows the details; please report it with your preset.",
        "設定ではなくプログラムの不具合です。詳細はコンソールにあります。プリセットを添えて報告してください。",
    ),
    "run.no_accelerate": ("could not start accelerate ({error})", "accelerateを起動できません ({error})"),
    "run.no_accelerate_hint": (
        "Check that accelerate is installed in this environment.",
        "この環境にaccelerateがインストールされているか確認してください。",
    ),
    # The loss chart
    "chart.step": ("step", "ステップ"),
    "chart.loss": ("loss", "損失"),
    "chart.average": ("average", "平均"),
    "chart.series": ("Curve", "曲線"),
    # Help texts
    "help.toggle": ("Show every help text", "すべての説明を表示"),
    # Log lines: the trainer's events, said in the page's language
    "log.plan": (
        "Plan: {images} images, {steps} steps in {epochs} epoch(s)",
        "計画: 画像{images}枚、{epochs}エポックで{steps}ステップ",
    ),
    "log.started": ("Started on {device}; output {output}", "{device}で開始しました。出力: {output}"),
    "log.epoch": ("Epoch {epoch}/{epochs} done", "エポック {epoch}/{epochs} 完了"),
    "log.epoch_loss": (
        "Epoch {epoch}/{epochs} done, average loss {loss:.4f}",
        "エポック {epoch}/{epochs} 完了、平均損失 {loss:.4f}",
    ),
    "log.saved": ("Saved {path}", "保存しました: {path}"),
    "log.saved_state": ("Saved the training state {path}", "学習状態を保存しました: {path}"),
    "log.sample": ("Sample image {path}", "サンプル画像: {path}"),
    "log.model": ("Model: {model}", "モデル: {model}"),
    "log.warning": ("Warning: {text}", "注意: {text}"),
    "log.info": ("{text}", "情報: {text}"),
    "log.error": ("Error: {text}", "エラー: {text}"),
    "log.finished": ("Finished in {seconds:.0f} s: {path}", "{seconds:.0f}秒で完了しました: {path}"),
    "log.stopped": ("Stopped at step {step}: {path}", "ステップ {step} で停止しました: {path}"),
    "log.running": ("Running: {command}", "実行: {command}"),
    "log.output": ("{text}", "出力: {text}"),
    **PANEL_STRINGS,
    # Utilities tab
    "tab.Utilities": ("Utilities", "ユーティリティ (Utilities)"),
    "util.intro": ("LoRA tools, as `python -m trainer.tools`", "LoRAの道具 (`python -m trainer.tools`)"),
    "util.file": ("LoRA file", "LoRAファイル"),
    "util.model": ("LoRA to resize (--model)", "リサイズするLoRA (--model)"),
    "util.new_rank": ("New rank (--new_rank)", "新しいランク (--new_rank)"),
    "util.new_conv_rank": ("Conv rank (--new_conv_rank; 0 = rank)", "convランク (--new_conv_rank、0 = 同じ)"),
    "util.dynamic_method": ("Dynamic method (--dynamic_method)", "動的ランクの方式 (--dynamic_method)"),
    "util.dynamic_none": ("none (fixed rank)", "なし(固定ランク)"),
    "util.dynamic_param": ("Dynamic parameter (--dynamic_param)", "動的ランクのパラメータ (--dynamic_param)"),
    "util.dynamic_param.info": ("e.g. 0.9 (sv_fro), 2 (sv_ratio)", "例: 0.9 (sv_fro)、2 (sv_ratio)"),
    "util.save_precision": ("Save precision (--save_precision)", "保存精度 (--save_precision)"),
    "util.same_as_input": ("same as the input", "入力と同じ"),
    "util.device": ("Device (--device)", "デバイス (--device)"),
    "util.save_to": ("Save to (--save_to)", "保存先 (--save_to)"),
    "util.models": ("LoRA files (--models), one per line", "LoRAファイル (--models)、1行に1つ"),
    "util.ratios": ("Ratios (--ratios), e.g. 1.0, 0.5", "比率 (--ratios)、例: 1.0, 0.5"),
    "util.merge_mode": ("How to merge", "マージの方法"),
    "util.mode_concat": ("concat: keep every rank (exact)", "concat: すべてのランクを残す(正確)"),
    "util.mode_svd": ("SVD to a new rank (--new_rank)", "SVDで新しいランクに (--new_rank)"),
    "util.mode_checkpoint": ("bake into a base model (checkpoint)", "ベースモデルに焼き込む"),
    "util.base_model": ("Base model (--base_model)", "ベースモデル (--base_model)"),
    "util.model_org": ("Base model (--model_org)", "元のモデル (--model_org)"),
    "util.model_tuned": ("Fine-tuned model (--model_tuned)", "ファインチューン後のモデル (--model_tuned)"),
    "util.dim": ("Rank (--dim)", "ランク (--dim)"),
    "util.conv_dim": ("Conv rank (--conv_dim, 0 = no LoCon)", "convランク (--conv_dim、0 = LoConなし)"),
    "util.clamp_quantile": ("Clamp quantile (--clamp_quantile)", "クランプ分位点 (--clamp_quantile)"),
    "util.images": ("Image folder (--images)", "画像フォルダ (--images)"),
    "util.method": ("Captioner (--method)", "キャプションの方式 (--method)"),
    "util.caption_model": ("Model (--model), empty = the default", "モデル (--model)、空欄 = 既定"),
    "util.threshold": ("Tag threshold (--threshold, wd14)", "タグのしきい値 (--threshold、wd14)"),
    "util.prefix": ("Prefix (--prefix), e.g. mychar,", "先頭に付ける文字 (--prefix)、例: mychar,"),
    "util.overwrite": ("Replace existing captions (--overwrite)", "既存を置き換える (--overwrite)"),
    "util.caption_extension": ("Caption extension", "キャプションの拡張子"),
    "util.run_verify": ("Verify", "確認 (Verify)"),
    "util.run_resize": ("Resize", "リサイズ (Resize)"),
    "util.run_merge": ("Merge", "マージ (Merge)"),
    "util.run_extract": ("Extract", "抽出 (Extract)"),
    "util.run_caption": ("Caption", "キャプション付け (Caption)"),
    "util.output": ("Result", "結果"),
    "util.download": ("Download the result", "結果をダウンロード"),
    "util.done": ("✅ Done.", "✅ 完了しました。"),
    "util.bad_number": ("{option}: not a number: {value!r}", "{option}: 数値ではありません: {value!r}"),
    **QUEUE_STRINGS,
}


def t(key: str, lang: str, **kwargs: Any) -> str:
    """The GUI string `key` in `lang` (English when no Japanese exists), formatted."""
    en, ja = _STRINGS[key]
    text = ja if lang == "ja" else en
    return text.format(**kwargs) if kwargs else text


def group_name(group: str, lang: str) -> str:
    """A field group's title; a group new to the schema shows its own name."""
    key = f"group.{group}"
    return t(key, lang) if key in _STRINGS else group


def tab_name(tab: str, lang: str) -> str:
    """A tab's title; a tab new to the schema shows its own name."""
    key = f"tab.{tab}"
    return t(key, lang) if key in _STRINGS else tab


def field_label(spec: Any, lang: str) -> str:
    """The label of a schema field in `lang`."""
    return (spec.label_ja or spec.label) if lang == "ja" else spec.label


def field_help(spec: Any, lang: str) -> str:
    """The help text of a schema field in `lang`."""
    return (spec.help_ja or spec.help) if lang == "ja" else spec.help


def pick_language(accept_language: str | None) -> str:
    """The first supported language in a browser's Accept-Language header ("en" otherwise).

    "ja-JP,ja;q=0.9,en;q=0.8" -> "ja"; languages are taken by their q weight."""
    if not accept_language:
        return "en"
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        pieces = part.strip().split(";")
        code = pieces[0].strip().lower().split("-")[0]
        weight = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        ranked.append((-weight, index, code))
    for _, _, code in sorted(ranked):
        if code in LANGS:
            return code
    return "en"
