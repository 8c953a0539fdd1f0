; Inno Setup script for faceapp; build_windows.ps1 passes AppVersion, Variant and SourceDir.
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef Variant
  #define Variant ""
#endif

[Setup]
AppId={{7C1E5B0A-3D43-4F2B-9A51-FACEA9900001}
AppName=faceapp
AppVersion={#AppVersion}
DefaultDirName={autopf}\faceapp
DefaultGroupName=faceapp
OutputBaseFilename=faceapp{#Variant}-{#AppVersion}-setup
Compression=lzma2
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
UninstallDisplayIcon={app}\faceapp.exe
SetupIconFile=..\faceapp.ico
ChangesEnvironment=yes

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: recursesubdirs ignoreversion

[Icons]
Name: "{group}\faceapp"; Filename: "{app}\faceapp.exe"
Name: "{group}\Uninstall faceapp"; Filename: "{uninstallexe}"

[Registry]
; faceapp-cli on PATH for the installing user
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; \
  Check: NeedsAddPath(ExpandConstant('{app}'))

[Code]
function NeedsAddPath(Dir: string): Boolean;
var Paths: string;
begin
  if not RegQueryStringValue(HKCU, 'Environment', 'Path', Paths) then begin Result := True; exit; end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') = 0;
end;
