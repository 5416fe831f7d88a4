; nanodictate Setup.exe: per user (no admin), built on Linux by packaging/build.py with
;   makensis -DVERSION=… -DPAYLOAD=<folder> -DWHEEL=<wheel file name> -DOUTFILE=… installer.nsi
; PAYLOAD holds uv.exe, the app's wheel and locks\windows.txt; no torch and no Python: uv
; fetches Python 3.11 and the pinned dependencies, then the CPU torch (the app offers the CUDA
; build at its first run). The runtime steps are nanodictate/core/runtime_install.py's, the
; same as on Linux. Running a newer Setup.exe again updates the app and keeps the runtime
; unless its dependencies changed, and then asks first.

Unicode true
SetCompressor /SOLID lzma
RequestExecutionLevel user
Name "nanodictate"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\nanodictate\app"
ShowInstDetails show
ShowUninstDetails show

!include "MUI2.nsh"
!include "LogicLib.nsh"

!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\nanodictate"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
!define PYTHONW "$INSTDIR\runtime\Scripts\pythonw.exe"
!define PYTHON "$INSTDIR\runtime\Scripts\python.exe"
!define DATA_DIR "$LOCALAPPDATA\nanodictate"

!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; Run a command, logging its output; stop the install with its exit status when it fails.
!macro Step command
    DetailPrint '${command}'
    nsExec::ExecToLog '${command}'
    Pop $0
    ${If} $0 != 0
        Abort 'Failed (exit status $0): ${command}'
    ${EndIf}
!macroend

Section "nanodictate (required)" SecApp
    SectionIn RO
    SetOutPath "$INSTDIR"
    File "${PAYLOAD}\uv.exe"
    File "${PAYLOAD}\${WHEEL}"
    SetOutPath "$INSTDIR\locks"
    File "${PAYLOAD}\locks\windows.txt"
    ; uv's cache and its Python inside the app folder: the uninstaller removes them too.
    System::Call 'Kernel32::SetEnvironmentVariable(t "UV_CACHE_DIR", t "$INSTDIR\cache")i'
    System::Call 'Kernel32::SetEnvironmentVariable(t "UV_PYTHON_INSTALL_DIR", t "$INSTDIR\python")i'
    ${IfNot} ${FileExists} "${PYTHON}"
        !insertmacro Step '"$INSTDIR\uv.exe" venv --quiet --python 3.11 "$INSTDIR\runtime"'
    ${EndIf}
    !insertmacro Step '"$INSTDIR\uv.exe" pip install --quiet --python "${PYTHON}" --no-deps --reinstall "$INSTDIR\${WHEEL}"'
    Delete "$INSTDIR\${WHEEL}"
    ${If} ${FileExists} "$INSTDIR\install.json"
        nsExec::ExecToLog '"${PYTHON}" -m nanodictate.core.runtime_install update --check'
        Pop $0
        ${If} $0 == 3
            MessageBox MB_YESNO "The runtime's dependencies changed. Download and install them now?" IDNO keep_runtime
            !insertmacro Step '"${PYTHON}" -m nanodictate.core.runtime_install update --yes'
            keep_runtime:
        ${EndIf}
    ${Else}
        !insertmacro Step '"${PYTHON}" -m nanodictate.core.runtime_install install --variant cpu'
    ${EndIf}

    CreateShortCut "$SMPROGRAMS\nanodictate.lnk" "${PYTHONW}" "-m nanodictate"
    WriteUninstaller "$INSTDIR\uninstall.exe"
    WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "nanodictate"
    WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
    WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
    WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
    WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
SectionEnd

Section /o "Start at login" SecAutostart
    WriteRegStr HKCU "${RUN_KEY}" "nanodictate" '"${PYTHONW}" -m nanodictate'
SectionEnd

Section "Uninstall"
    Delete "$SMPROGRAMS\nanodictate.lnk"
    DeleteRegValue HKCU "${RUN_KEY}" "nanodictate"
    DeleteRegKey HKCU "${UNINSTALL_KEY}"
    RMDir /r "$INSTDIR"
    ; Settings, logs, caches and recordings in flight go; the models (≈2 GB) and the
    ; history stay unless the user says otherwise (a silent uninstall keeps them).
    Delete "${DATA_DIR}\nanodictate.ini"
    RMDir /r "${DATA_DIR}\Logs"
    RMDir /r "${DATA_DIR}\Cache"
    RMDir /r "${DATA_DIR}\recordings-in-progress"
    MessageBox MB_YESNO|MB_DEFBUTTON2 "Also remove the downloaded speech models?" /SD IDNO IDNO keep_models
        RMDir /r "${DATA_DIR}\models"
    keep_models:
    MessageBox MB_YESNO|MB_DEFBUTTON2 "Also remove your dictation history?" /SD IDNO IDNO keep_history
        Delete "${DATA_DIR}\history.sqlite3*"
    keep_history:
    RMDir "${DATA_DIR}"
SectionEnd
