"""English and Japanese for the run queue, sweeps and the comparison grid (lora_gui.queue_panel).
`lora_gui.i18n` joins this table to its own; `t()` reads both. Imports nothing of the app.
"""

from __future__ import annotations

QUEUE_STRINGS: dict[str, tuple[str, str]] = {
    "queue.add": ("Add to queue", "キューに追加"),
    "queue.title": ("Queue (runs one after another)", "キュー(順番に学習)"),
    "queue.sweep": ("Sweep (optional)", "スイープ(任意)"),
    "queue.sweep.info": (
        'Vary settings, one run per combination, e.g. {"network_alpha": [50, 80], "num_repeats": [40, 50]}',
        "設定を変えて組み合わせごとに1回ずつ学習します。"
        '例: {"network_alpha": [50, 80], "num_repeats": [40, 50]}',
    ),
    "queue.sweep.bad": (
        "Sweep: not readable as JSON ({reason}); write it as in the example.",
        "スイープ: JSONとして読めません({reason})。例の形で書いてください。",
    ),
    "queue.added": ("Added {n} run(s) to the queue: {names}", "{n} 件をキューに追加しました: {names}"),
    "queue.refused": ("Not added; fix these first:", "追加しませんでした。先に次を直してください:"),
    "queue.empty": ("The queue is empty.", "キューは空です。"),
    "queue.col.id": ("No.", "番号"),
    "queue.col.name": ("Run", "学習"),
    "queue.col.state": ("State", "状態"),
    "queue.col.files": ("Files / message", "ファイル / メッセージ"),
    "queue.state.waiting": ("waiting", "待機中"),
    "queue.state.running": ("running", "実行中"),
    "queue.state.done": ("done", "完了"),
    "queue.state.failed": ("failed", "失敗"),
    "queue.state.interrupted": ("interrupted", "中断"),
    "queue.run": ("Run queue", "キューを実行"),
    "queue.stop_after": ("Stop after current run", "現在の学習の後で停止"),
    "queue.refresh": ("Refresh", "更新"),
    "queue.entry": ("Entry #", "項目 #"),
    "queue.up": ("Move up", "上へ"),
    "queue.down": ("Move down", "下へ"),
    "queue.remove": ("Remove", "削除"),
    "queue.started": ("The queue runs; the list follows it.", "キューを実行中です。一覧に進捗が出ます。"),
    "queue.already": ("The queue is already running.", "キューはすでに実行中です。"),
    "queue.busy": (
        "A training run is in progress; start the queue when it ends.",
        "学習が実行中です。終わってからキューを実行してください。",
    ),
    "queue.will_stop": (
        "The queue stops after its current run.",
        "現在の学習が終わったらキューを停止します。",
    ),
    "queue.finished": ("The queue has finished.", "キューが終わりました。"),
    "queue.error": ("Queue: {reason}", "キュー: {reason}"),
    "queue.stops_after": ("(stops after the current run)", "(現在の学習の後で停止)"),
    "grid.title": ("Comparison grid", "比較グリッド"),
    "grid.loras": ("LoRA files (one per line)", "LoRAファイル(1行に1つ)"),
    "grid.loras.info": (
        "Empty: every file the queue and the last run saved.",
        "空欄: キューと直前の学習が保存したすべてのファイル。",
    ),
    "grid.prompts": ("Prompts (one per line)", "プロンプト(1行に1つ)"),
    "grid.weights": ("LoRA weights", "LoRAの強さ"),
    "grid.seed": ("Seed", "シード"),
    "grid.steps": ("Steps", "ステップ数"),
    "grid.size": ("Size (width,height; empty: the model's)", "サイズ(幅,高さ。空欄: モデルの標準)"),
    "grid.render": ("Render grid", "グリッドを作成"),
    "grid.image": ("Grid", "グリッド"),
    "grid.file": ("Grid PNG", "グリッドPNG"),
    "grid.no_files": (
        "No LoRA files: list them, or run the queue first.",
        "LoRAファイルがありません。指定するか、先にキューを実行してください。",
    ),
    "grid.no_model": (
        "Choose the base model first (Source Model).",
        "先にベースモデルを選んでください(ソースモデル)。",
    ),
    "grid.bad_weights": (
        "LoRA weights: write numbers separated by spaces, e.g. 0.6 0.8 1.0",
        "LoRAの強さ: 空白で区切った数で書いてください。例: 0.6 0.8 1.0",
    ),
    "grid.bad_size": (
        "Size: write width,height, e.g. 512,512",
        "サイズ: 幅,高さ の形で書いてください。例: 512,512",
    ),
    "grid.failed": ("The grid could not be made: {reason}", "グリッドを作れませんでした: {reason}"),
    "grid.done": ("Wrote {path}", "{path} を保存しました"),
}
