"""English and Japanese for the panels beside the tabs: the Model Quick Pick and the models
folder, model downloads, the folder / file picker, and the Tools row. `lora_gui.i18n` joins
this table to its own; `t()` reads both. Imports nothing of the app.
"""

from __future__ import annotations

PANEL_STRINGS: dict[str, tuple[str, str]] = {
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
    # The GPU memory and time estimate (Folders tab, under the dataset summary)
    "estimate.title": ("GPU memory and time (estimate)", "GPUメモリと時間(見積もり)"),
    "estimate.vram": ("GPU memory (GB)", "GPUメモリ (GB)"),
    "estimate.vram.info": (
        "The card's memory, for the estimate; filled from this computer's GPU when it has one.",
        "見積もりに使うGPUのメモリ量。このPCにGPUがあれば自動で入ります。",
    ),
    "estimate.peak": ("Peak GPU memory about **{peak:.1f} GiB**", "最大GPUメモリ 約 **{peak:.1f} GiB**"),
    "estimate.fits": ("fits in {vram:g} GB", "{vram:g} GB に収まります"),
    "estimate.tight": (
        "tight in {vram:g} GB: close other programs that use the GPU",
        "{vram:g} GB ではぎりぎりです。GPUを使う他のプログラムを閉じてください",
    ),
    "estimate.no_fit": (
        "does not fit in {vram:g} GB: the run would stop with out of memory",
        "{vram:g} GB に収まりません。メモリ不足で学習が止まります",
    ),
    "estimate.parts": (
        "weights {weights:.2f}, activations {activations:.2f}, optimizer state {optimizer:.2f}, "
        "gradients {gradients:.2f}, caches {caches:.2f} (GiB)",
        "重み {weights:.2f}、アクティベーション {activations:.2f}、オプティマイザ状態 {optimizer:.2f}、"
        "勾配 {gradients:.2f}、キャッシュ {caches:.2f}(GiB)",
    ),
    "estimate.change": (
        "Smallest change that fits: {change} (about {peak:.1f} GiB)",
        "収まる最小の変更: {change}(約 {peak:.1f} GiB)",
    ),
    "estimate.no_change": (
        "No single change makes it fit: lower the resolution, or use a GPU with more memory.",
        "1つの変更では収まりません。解像度を下げるか、メモリの多いGPUを使ってください。",
    ),
    "estimate.step": ("About {s:.2f} s per step on {gpu}.", "{gpu} で1ステップ約 {s:.2f} 秒。"),
    "estimate.run": ("The run: about {run}.", "学習全体で約 {run}。"),
    "estimate.seconds": ("{n} s", "{n} 秒"),
    "estimate.minutes": ("{n} min", "{n} 分"),
    "estimate.hours": ("{h} h {m} min", "{h} 時間 {m} 分"),
    "estimate.note": (
        "An estimate: the run's own step on shape-only tensors (nothing loaded); the time "
        "assumes typical clocks.",
        "見積もりです: 学習のステップを形だけのテンソルで実行しました(モデルは読み込みません)。"
        "時間は標準的なクロックを想定しています。",
    ),
    "estimate.none": ("No estimate: {reason}", "見積もりなし: {reason}"),
    "estimate.paused": (
        "The estimate waits until training ends (it would slow the run down).",
        "見積もりは学習が終わるまで待ちます(学習が遅くなるため)。",
    ),
    "run.queue_busy": (
        "The queue is running: wait for it, or press Stop after current run in the Queue.",
        "キューの実行中です。終わるのを待つか、キューの「現在の学習の後に停止」を押してください。",
    ),
}
