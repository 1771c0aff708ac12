using System.Diagnostics;

namespace HookBroker.Client.Tests.Infrastructure;

/// <summary>
/// A sample app (src/*.Sample build output) run as a separate process with <c>dotnet &lt;dll&gt;</c>, configured by
/// environment variables; its output is captured for failure messages. Disposing kills it.
/// </summary>
internal sealed class SampleProcess : IAsyncDisposable
{
    private readonly BoundedLog log = new(2000);
    private readonly Process process;

    private SampleProcess(string name, Process process)
    {
        Name = name;
        this.process = process;
    }

    public string Name { get; }

    public bool HasExited => process.HasExited;

    public string LogTail => log.Tail(200);

    /// <summary>The process id.</summary>
    public int Id => process.Id;

    /// <summary>The exit code once the process has exited.</summary>
    public int ExitCode => process.ExitCode;

    /// <summary>The lines the process wrote to standard output so far (the last 2000).</summary>
    public IReadOnlyList<string> OutputLines => [.. log.Snapshot().Where(l => !l.IsStdErr).Select(l => l.Text)];

    public static SampleProcess Start(string name, string dll, IReadOnlyDictionary<string, string> environment, IReadOnlyList<string>? arguments = null)
    {
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"{name} is not built for {RepoPaths.Configuration}; build the solution (./scripts/test.sh does).", dll);
        }

        return StartCommand(name, BrokerProcess.DotnetHost(), [dll, .. arguments ?? []], environment, Path.GetDirectoryName(dll));
    }

    /// <summary>Starts any command the same way (output captured, killed on dispose).</summary>
    public static SampleProcess StartCommand(
        string name, string fileName, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // Nothing from the developer's shell may change the app under test.
        foreach (var key in startInfo.Environment.Keys.ToList())
        {
            if (key.StartsWith("HookBroker__", StringComparison.OrdinalIgnoreCase) || key.StartsWith("Smtp__", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase) || key.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase))
            {
                startInfo.Environment.Remove(key);
            }
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[key] = value;
        }

        var started = new Process { StartInfo = startInfo };
        var sample = new SampleProcess(name, started);
        started.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                sample.log.Add(new LogLine(1, IsStdErr: false, e.Data));
            }
        };
        started.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                sample.log.Add(new LogLine(1, IsStdErr: true, e.Data));
            }
        };
        if (!started.Start())
        {
            throw new InvalidOperationException($"Could not start {name} ({fileName}).");
        }

        started.BeginOutputReadLine();
        started.BeginErrorReadLine();
        return sample;
    }

    /// <summary>Writes a line to the process's standard input.</summary>
    public async Task WriteLineAsync(string line)
    {
        await process.StandardInput.WriteLineAsync(line);
        await process.StandardInput.FlushAsync();
    }

    /// <summary>SIGKILLs the process (and anything it started) and waits until it is gone.</summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync(cancellationToken);
    }

    /// <summary>Sends SIGTERM: a .NET host then stops gracefully.</summary>
    public async Task TerminateAsync(CancellationToken cancellationToken)
    {
        await Signals.TerminateAsync(process, Name, cancellationToken);
    }

    /// <summary>Waits for the process to exit; throws <see cref="TimeoutException"/> with its output past <paramref name="timeout"/>.</summary>
    public async Task WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await process.WaitForExitAsync(cancellationToken).WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{Name} did not exit within {timeout.TotalSeconds:0.#} s.\nOutput:\n{LogTail}", e);
        }

        // The parameterless wait also drains the redirected output, so the last lines are in the log.
        await process.WaitForExitAsync(cancellationToken);
    }

    /// <summary>Throws with the process's output when it has exited (e.g. options validation failed).</summary>
    public void ThrowIfExited()
    {
        if (process.HasExited)
        {
            throw new InvalidOperationException($"{Name} exited with code {process.ExitCode}.\nOutput:\n{LogTail}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"{Name} output:\n{LogTail}");
        process.Dispose();
    }
}
