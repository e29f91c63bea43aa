<#
.SYNOPSIS
    The safewsk verification kit: runs the self-test driver (SafeWskVerify.sys)
    on this Windows machine under Driver Verifier and prints "N passed, N failed".

.DESCRIPTION
    Run as administrator on a test machine (a VM is best), from the checkout,
    after building verify\safewsk_verify.vcxproj (docs/verify.md):

      powershell -ExecutionPolicy Bypass -File verify\Verify-SafeWsk.ps1 `
          -DriverDir verify\x64\Release\SafeWskVerify

    1. Checks: administrator, test signing on (bcdedit), the driver package
       folder holds SafeWskVerify.sys, safewsk_verify.inf and SafeWskVerify.cat.
    2. Driver Verifier for SafeWskVerify.sys: the standard rule classes plus
       IRP logging (11) and code integrity checks (26); pool tracking (4) is
       one of the standard ones. Verifier settings take effect at boot, so
       the first run configures them and asks for a reboot (exit code 3010);
       run the script again after it.
    3. Starts the loopback servers the cases need: an echo server on
       127.0.0.1 and one on ::1, and a port on which nothing listens.
    4. Installs the driver package (pnputil /add-driver /install: a primitive
       driver INF, which creates the demand-start service), writes the
       service's Parameters (EchoPort, RefusedPort, Echo6Port, ListenPort1,
       ListenPort2, ResultFile),
       starts the service, and waits (at most -TimeoutSeconds) for the result
       file the driver writes when its cases are done.
    5. Prints the result file, stops the service, removes the driver package
       (pnputil /delete-driver /uninstall), stops the servers, and prints
       "N passed, N failed" as the last line. Exit code 0 only if no case
       failed.

    -ResetVerifier runs "verifier /reset" at the end (a reboot clears it).
    Nothing here has been run on Windows by the project: see docs/verify.md.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$DriverDir,
    [int]$TimeoutSeconds = 300,
    [switch]$ResetVerifier
)
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$Service = 'SafeWskVerify'
$Sys = 'SafeWskVerify.sys'
$Inf = 'safewsk_verify.inf'
# Standard rule classes (Driver Verifier options, Microsoft Learn: 1 special
# pool, 2 force IRQL checking, 4 pool tracking, 5 I/O verification, 6
# deadlock detection, 8 DMA checking, 9 security checks, 12 miscellaneous
# checks, 18 DDI compliance checking) plus 11 IRP logging and 26 code
# integrity checks.
$RuleClasses = @(1, 2, 4, 5, 6, 8, 9, 11, 12, 18, 26)
$ResultFile = Join-Path $env:SystemRoot 'Temp\safewsk-verify.txt'

function Fail([string]$Message) {
    Write-Host "FAILED: $Message" -ForegroundColor Red
    Write-Host '0 passed, 1 failed'
    exit 1
}

function Invoke-Tool([string]$File, [string[]]$Arguments) {
    $output = & $File @Arguments 2>&1 | Out-String
    [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = $output }
}

# ---- 1. checks
$principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail 'run this script as administrator'
}
$bcd = Invoke-Tool 'bcdedit.exe' @('/enum', '{current}')
if ($bcd.ExitCode -ne 0) { Fail "bcdedit /enum {current}: $($bcd.Output)" }
if ($bcd.Output -notmatch '(?im)^testsigning\s+Yes') {
    Fail 'test signing is off: "bcdedit /set testsigning on" (Secure Boot off), reboot, run again'
}
$DriverDir = (Resolve-Path $DriverDir).Path
foreach ($f in @($Sys, $Inf, 'SafeWskVerify.cat')) {
    if (-not (Test-Path (Join-Path $DriverDir $f))) { Fail "$f not found in $DriverDir (the built driver package folder)" }
}
Write-Host "test signing on; driver package: $DriverDir"

# ---- 2. Driver Verifier (takes effect at boot)
$query = Invoke-Tool 'verifier.exe' @('/querysettings')
$verified = $query.Output -match [regex]::Escape($Sys)
if (-not $verified) {
    $arguments = @('/ruleclasses') + ($RuleClasses | ForEach-Object { "$_" }) + @('/driver', $Sys)
    $set = Invoke-Tool 'verifier.exe' $arguments
    Write-Host $set.Output
    Write-Host "Driver Verifier is now set for $Sys (rule classes $($RuleClasses -join ' ')): reboot, then run this script again."
    exit 3010
}
Write-Host "Driver Verifier is set for $Sys"

# ---- 3. loopback servers
Add-Type -TypeDefinition @'
using System;
using System.Net;
using System.Net.Sockets;
using System.Threading;
public sealed class SafeWskEchoServer : IDisposable {
    private readonly TcpListener listener;
    public int Port { get { return ((IPEndPoint)listener.LocalEndpoint).Port; } }
    public SafeWskEchoServer(IPAddress address) {
        listener = new TcpListener(address, 0);
        listener.Start();
        var t = new Thread(Accept); t.IsBackground = true; t.Start();
    }
    private void Accept() {
        while (true) {
            TcpClient c;
            try { c = listener.AcceptTcpClient(); } catch (Exception) { return; }
            var t = new Thread(() => Echo(c)); t.IsBackground = true; t.Start();
        }
    }
    private static void Echo(TcpClient c) {
        try {
            using (c) {
                var s = c.GetStream(); var b = new byte[4096]; int n;
                while ((n = s.Read(b, 0, b.Length)) > 0) s.Write(b, 0, n);
            }
        } catch (Exception) { }
    }
    public void Dispose() { listener.Stop(); }
    public static int UnusedPort() {
        var l = new TcpListener(IPAddress.Loopback, 0); l.Start();
        int p = ((IPEndPoint)l.LocalEndpoint).Port; l.Stop(); return p;
    }
}
'@
$echo = [SafeWskEchoServer]::new([Net.IPAddress]::Loopback)
$echo6 = $null
try { $echo6 = [SafeWskEchoServer]::new([Net.IPAddress]::IPv6Loopback) } catch { Write-Host "no ::1 here: $_" }
$refused = [SafeWskEchoServer]::UnusedPort()
# Free ports for the cases' own listening sockets (ListenPort1, ListenPort2).
$listen1 = [SafeWskEchoServer]::UnusedPort()
$listen2 = [SafeWskEchoServer]::UnusedPort()
while ($listen2 -eq $listen1) { $listen2 = [SafeWskEchoServer]::UnusedPort() }
$echo6Port = if ($echo6) { $echo6.Port } else { 0 }
Write-Host "servers: echo 127.0.0.1:$($echo.Port), echo6 [::1]:$echo6Port, refused $refused"

$oem = $null
$exitCode = 1
try {
    # ---- 4. install, parameters, start, wait for the result file
    Remove-Item -Force -ErrorAction SilentlyContinue $ResultFile
    $add = Invoke-Tool 'pnputil.exe' @('/add-driver', (Join-Path $DriverDir $Inf), '/install')
    Write-Host $add.Output
    if ($add.ExitCode -ne 0 -and $add.ExitCode -ne 3010) { Fail "pnputil /add-driver: exit code $($add.ExitCode)" }
    if ($add.Output -match '(?im)Published Name:\s*(oem\d+\.inf)') { $oem = $Matches[1] }
    $key = "HKLM:\SYSTEM\CurrentControlSet\Services\$Service\Parameters"
    New-Item -Path $key -Force | Out-Null
    New-ItemProperty -Path $key -Name EchoPort -PropertyType DWord -Value $echo.Port -Force | Out-Null
    New-ItemProperty -Path $key -Name RefusedPort -PropertyType DWord -Value $refused -Force | Out-Null
    New-ItemProperty -Path $key -Name Echo6Port -PropertyType DWord -Value $echo6Port -Force | Out-Null
    New-ItemProperty -Path $key -Name ListenPort1 -PropertyType DWord -Value $listen1 -Force | Out-Null
    New-ItemProperty -Path $key -Name ListenPort2 -PropertyType DWord -Value $listen2 -Force | Out-Null
    New-ItemProperty -Path $key -Name ResultFile -PropertyType String -Value "\??\$ResultFile" -Force | Out-Null
    $start = Invoke-Tool 'sc.exe' @('start', $Service)
    if ($start.ExitCode -ne 0) { Fail "sc start $($Service): $($start.Output)" }
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    $summary = $null
    while ((Get-Date) -lt $deadline) {
        if (Test-Path $ResultFile) {
            $summary = Select-String -Path $ResultFile -Pattern 'safewsk-verify: (\d+) passed, (\d+) failed' | Select-Object -Last 1
            if ($summary) { break }
        }
        Start-Sleep -Milliseconds 500
    }
    if (-not $summary) { Fail "no result in $ResultFile after $TimeoutSeconds s" }

    # ---- 5. report
    Get-Content $ResultFile | ForEach-Object { Write-Host $_ }
    $passed = [int]$summary.Matches[0].Groups[1].Value
    $failed = [int]$summary.Matches[0].Groups[2].Value
    if ($failed -eq 0 -and $passed -gt 0) { $exitCode = 0 }
} finally {
    $stop = Invoke-Tool 'sc.exe' @('stop', $Service)
    Write-Host "sc stop: exit code $($stop.ExitCode)"
    if (-not $oem) {
        $enum = Invoke-Tool 'pnputil.exe' @('/enum-drivers')
        $block = ($enum.Output -split '(?m)^\s*$') | Where-Object { $_ -match [regex]::Escape($Inf) } | Select-Object -First 1
        if ($block -and $block -match '(?im)Published Name:\s*(oem\d+\.inf)') { $oem = $Matches[1] }
    }
    if ($oem) {
        $del = Invoke-Tool 'pnputil.exe' @('/delete-driver', $oem, '/uninstall', '/force')
        Write-Host "pnputil /delete-driver $($oem): exit code $($del.ExitCode)"
    } else {
        Write-Host 'the driver package was not found in the driver store (nothing to remove)'
    }
    $echo.Dispose()
    if ($echo6) { $echo6.Dispose() }
    if ($ResetVerifier) { Invoke-Tool 'verifier.exe' @('/reset') | Out-Null; Write-Host 'verifier /reset (takes effect at the next boot)' }
}
if (-not (Test-Path variable:passed)) { $passed = 0; $failed = 1 }
Write-Host "$passed passed, $failed failed"
exit $exitCode
