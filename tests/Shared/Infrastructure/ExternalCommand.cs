using System.Diagnostics;

namespace HookBroker.Tests.Infrastructure;

/// <summary>The outcome of a finished command.</summary>
internal sealed record CommandResult(string CommandLine, int ExitCode, string StdOut, string StdErr)
{
    public override string ToString() =>
        $"`{CommandLine}` exited with {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}

/// <summary>Runs a short-lived command to completion and captures its output.</summary>
internal static class ExternalCommand
{
    public static async Task<CommandResult> RunAsync(string fileName, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        var commandLine = $"{fileName} {string.Join(' ', arguments)}";
        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"Could not start `{commandLine}`.");
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await process.WaitForExitAsync(timeoutSource.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new TimeoutException(
                $"`{commandLine}` did not finish within {timeout.TotalSeconds:0.#} s.\n--- stdout ---\n{await stdout}\n--- stderr ---\n{await stderr}");
        }

        return new CommandResult(commandLine, process.ExitCode, await stdout, await stderr);
    }
}
