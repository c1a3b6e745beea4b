@echo off
rem Sets up on the first run (.venv), then opens the app. Try: gui.bat --demo
cd /d "%~dp0"
if not exist .venv\Scripts\python.exe (
    py -3 -m venv .venv || python -m venv .venv
)
.venv\Scripts\python.exe -c "import torch" 2>nul || (
    where nvidia-smi >nul 2>nul && (
        echo NVIDIA GPU found: install the CUDA build of torch, see README "CUDA"
        .venv\Scripts\python.exe -m pip install torch --index-url https://download.pytorch.org/whl/cu128
    ) || (
        .venv\Scripts\python.exe -m pip install torch==2.13.0
    )
)
if not exist .venv\.installed (
    .venv\Scripts\python.exe -m pip install -e . && .venv\Scripts\python.exe -m pip install --no-deps open-clip-torch && type nul > .venv\.installed
)
.venv\Scripts\python.exe gui.py %*
