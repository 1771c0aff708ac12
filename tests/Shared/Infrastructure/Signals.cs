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
}
