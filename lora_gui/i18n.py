"""English and Japanese for the GUI's own words: tabs, buttons, the run panel.

Field labels and help texts are not here: they live once, in the config schema
(`FieldSpec.label` / `label_ja`, `help` / `help_ja`). Japanese tab and button names keep
the English word beside them, because the guides our users follow say "Foldersタブ" and
"Start traning".
"""

from __future__ import annotations

from typing import Any

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
    "group.LoRA+": ("LoRA+", "LoRA+"),
    "group.Block LR": ("Learning rate per block", "ブロックごとの学習率 (Block LR)"),
    "group.LyCORIS": ("LyCORIS", "LyCORIS"),
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
    "preset.saved": (
        "Saved **{path}** (secrets such as tokens are never written).",
        "**{path}** に保存しました(トークンなどの秘密情報は保存しません)。",
    ),
    "preset.none": ("Choose a preset first.", "先にプリセットを選んでください。"),
    "preset.bad_name": ("The preset name {reason}.", "プリセット名が不正です: {reason}"),
    "preset.not_saved": ("Not saved; fix these first:", "保存できません。先に次を直してください:"),
    "preset.notes": ("Notes:", "メモ:"),
    "preset.unusable": (
        "{key}: {value!r} cannot be shown here; kept the default",
        "{key}: {value!r} は使えないため既定値のままにしました",
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
    # Model Quick Pick: known ids, the models folder, the download on Start
    "quick_pick.hub": ("{name} · {id} (Hugging Face)", "{name} · {id}(Hugging Face)"),
    "quick_pick.file": ("models folder: {name}", "モデルフォルダ: {name}"),
    "models_dir": ("Models folder", "モデルフォルダ (Models folder)"),
    "models_dir.info": (
        "Its .safetensors / .ckpt files appear in the Quick Pick; remembered for next time.",
        "ここにある .safetensors / .ckpt がクイック選択に出ます。次回も使います。",
    ),
    "models_dir.missing": ("Models folder: no such folder.", "モデルフォルダ: そのフォルダはありません。"),
    "models_dir.not_saved": (
        "Models folder: used now, but it could not be remembered (the settings folder is not writable).",
        "モデルフォルダ: 今回は使いますが、設定フォルダに書き込めないため記憶できませんでした。",
    ),
    "models_dir.found": (
        "{n} model(s) in the models folder are in the Quick Pick.",
        "モデルフォルダの {n} 個のモデルをクイック選択に追加しました。",
    ),
    "model.will_download": (
        "**{id}** is not downloaded yet: Start training downloads it first (only the files "
        "training needs, resumable), with the progress under the Start button.",
        "**{id}** はまだダウンロードされていません。学習開始を押すと先にダウンロードします"
        "(学習に必要なファイルのみ、中断しても再開可能)。進捗は学習開始ボタンの下に出ます。",
    ),
    "download.listing": (
        "Downloading **{id}**: listing its files...",
        "**{id}** をダウンロード中: ファイル一覧を取得中...",
    ),
    "download.progress": (
        "Downloading **{id}**: {percent:.0f} % ({done} of {total})",
        "**{id}** をダウンロード中: {percent:.0f} %({total} 中 {done})",
    ),
    "download.done": ("Downloaded **{id}**.", "**{id}** のダウンロードが完了しました。"),
    "download.failed": (
        "Download of **{id}** failed: {message}",
        "**{id}** のダウンロードに失敗しました: {message}",
    ),
    "download.started": (
        "Downloading the base model first; training starts when it is done.",
        "先にベースモデルをダウンロードします。完了すると学習が始まります。",
    ),
    "download.busy": (
        "A model download is in progress; training starts when it is done.",
        "モデルをダウンロード中です。完了すると学習が始まります。",
    ),
    # Folder / file picker
    "browse.title": ("Choose: **{field}**", "選択: **{field}**"),
    "browse.folder": ("Folder (type a path and press Enter)", "フォルダ(パスを入力してEnter)"),
    "browse.up": ("⬆ Up", "⬆ 上へ"),
    "browse.home": ("Home", "ホーム"),
    "browse.entries": ("Folders and files", "フォルダとファイル"),
    "browse.entries_dir": ("Folders", "フォルダ"),
    "browse.use_folder": ("Use this folder", "このフォルダを使う"),
    "browse.cancel": ("Cancel", "キャンセル"),
    "browse.not_folder": ("That is not an existing folder.", "存在するフォルダではありません。"),
    "browse.unreadable": ("This folder cannot be read.", "このフォルダは読み込めません。"),
    "browse.not_listed": (
        "That entry is not in this folder any more.",
        "その項目はもうこのフォルダにありません。",
    ),
    "browse.more": ("{n} more entries are not shown.", "ほかに {n} 個の項目は表示していません。"),
    "browse.only": ("Files shown: {suffixes}", "表示するファイル: {suffixes}"),
    "browse.refused": (
        "The file picker is off: the app listens on a network address without --auth.",
        "ファイル選択は無効です(--authなしでネットワークに公開しているため)。",
    ),
    # Tools: config file at a path, the training command, TensorBoard
    "tools.config_path": ("Config file (.json)", "設定ファイル (.json)"),
    "tools.config_path.info": (
        "Any path; empty for Print training command means <output folder>/<output name>.json.",
        "任意のパス。学習コマンド表示で空欄なら <出力フォルダ>/<出力ファイル名>.json。",
    ),
    "tools.open": ("Open", "開く (Open)"),
    "tools.save": ("Save", "保存 (Save)"),
    "tools.download": ("Download the config file", "設定ファイルをダウンロード"),
    "tools.print": ("Print training command", "学習コマンドを表示 (Print training command)"),
    "tools.tensorboard": ("Start TensorBoard", "TensorBoardを開始"),
    "tools.command": ("Training command", "学習コマンド"),
    "tools.saved": (
        "Saved **{path}** (secrets such as tokens are never written).",
        "**{path}** に保存しました(トークンなどの秘密情報は保存しません)。",
    ),
    "tools.command_saved": (
        "Wrote **{path}**. Run this in a terminal to train without the page:",
        "**{path}** に書き出しました。ページを使わずに学習するには端末で次を実行します:",
    ),
    "tools.no_path": ("Give the config file's path first.", "先に設定ファイルのパスを入力してください。"),
    "tools.no_output": (
        "Give the config file's path, or set the Output folder (Folders tab).",
        "設定ファイルのパスを入力するか、出力フォルダ(Foldersタブ)を設定してください。",
    ),
    "tools.not_json": ("{path} is not a .json file path.", "{path} は .json ファイルのパスではありません。"),
    "tools.not_found": ("{path} does not exist.", "{path} はありません。"),
    "tools.not_written": ("{path} could not be written: {reason}", "{path} に書き込めません: {reason}"),
    "tools.invalid": (
        "Not saved; fix these first:\n\n{problems}",
        "保存できません。先に次を直してください:\n\n{problems}",
    ),
    "tools.tb_no_logdir": (
        "Set the Logging folder (Folders tab) first: training writes its TensorBoard files there.",
        "先にログフォルダ(Foldersタブ)を設定してください。学習はそこにTensorBoardのファイルを書き込みます。",
    ),
    "tools.tb_started": (
        "TensorBoard started for {logdir}: [{url}]({url}) (on the computer running the app; it "
        "may take a few seconds to answer).",
        "{logdir} のTensorBoardを開始しました: [{url}]({url})(アプリを実行しているコンピューター上。"
        "表示まで数秒かかることがあります)。",
    ),
    "tools.tb_running": (
        "TensorBoard is already running for {logdir}: [{url}]({url})",
        "{logdir} のTensorBoardは実行中です: [{url}]({url})",
    ),
    "tools.tb_failed": ("TensorBoard could not start: {reason}", "TensorBoardを開始できません: {reason}"),
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
