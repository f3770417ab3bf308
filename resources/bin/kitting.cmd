@echo off
rem The `kitting` CLI shipped inside Kitting Station: the bundled CLI run by the apps Electron as Node.
setlocal
set "ELECTRON_RUN_AS_NODE=1"
"%~dp0..\..\kitting-station.exe" "%~dp0..\app.asar\dist\cli\main.js" %*
