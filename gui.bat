@echo off
rem Sets up on the first run (.venv), then opens the app. Try: gui.bat --demo
rem With an NVIDIA GPU: the CUDA 12.8 build of torch and bitsandbytes (the 8-bit optimizers,
rem the default AdamW8bit); without one: the CPU build of torch.
cd /d "%~dp0"
if not exist .venv\Scripts\python.exe (
    py -3 -m venv .venv || python -m venv .venv
)
set GPU=0
where nvidia-smi >nul 2>nul && set GPU=1
.venv\Scripts\python.exe -c "import torch" 2>nul || (
    if "%GPU%"=="1" (
        echo NVIDIA GPU found: installing the CUDA build of torch, see README "CUDA"
        .venv\Scripts\python.exe -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128 || exit /b 1
    ) else (
        .venv\Scripts\python.exe -m pip install torch==2.13.0 || exit /b 1
    )
)
if not exist .venv\.installed (
    .venv\Scripts\python.exe -m pip install -e . || exit /b 1
    .venv\Scripts\python.exe -m pip install --no-deps open-clip-torch || exit /b 1
    if "%GPU%"=="1" (
        .venv\Scripts\python.exe -m pip install "bitsandbytes>=0.44" || (
            echo bitsandbytes could not be installed: choose AdamW under Parameters ^> Optimizer, or run gui.bat again.
            exit /b 1
        )
    )
    type nul > .venv\.installed
)
.venv\Scripts\python.exe gui.py %*
