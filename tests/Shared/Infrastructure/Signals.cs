using System.Diagnostics;
using System.Globalization;

namespace HookBroker.Tests.Infrastructure;

/// <summary>Signals to the processes tests start.</summary>
internal static class Signals
{
    /// <summary>Sends SIGTERM (a .NET host then stops gracefully); throws if it could not be sent to a running process.</summary>
    public static async Task TerminateAsync(Process process, string name, CancellationToken cancellationToken)
    {
        var signal = await ExternalCommand.RunAsync(
            "kill", ["-TERM", process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10), cancellationToken);
        if (signal.ExitCode != 0 && !process.HasExited)
        {
            throw new InvalidOperationException($"Could not send SIGTERM to {name}: {signal}");
        }
    }

    /// <summary>SIGKILLs a running process (and anything it started) and waits until it is gone.</summary>
    public static async Task KillAsync(Process? process, CancellationToken cancellationToken)
    {
        if (process is not { HasExited: false } running)
        {
            return;
        }

        running.Kill(entireProcessTree: true);
        await running.WaitForExitAsync(cancellationToken);
    }

    /// <summary>
    /// Sends SIGTERM to a running process and waits <paramref name="timeout"/> at most for it to exit; past that it is
    /// killed and a <see cref="TimeoutException"/> names it with the end of its log.
    /// </summary>
    public static async Task StopAsync(Process? process, string name, TimeSpan timeout, Func<string> logTail, CancellationToken cancellationToken)
    {
        if (process is not { HasExited: false } running)
        {
            return;
        }

        await TerminateAsync(running, name, cancellationToken);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await running.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            running.Kill(entireProcessTree: true);
            throw new TimeoutException($"{name} did not exit within {timeout.TotalSeconds:0} s of SIGTERM (killed).\nIts output:\n{logTail()}");
        }
    }
}
