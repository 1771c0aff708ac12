using System.Diagnostics;

namespace HookBroker.Tests.Infrastructure;

/// <summary>Starts the processes the fixtures run, with their output captured line by line.</summary>
internal static class CapturedProcess
{
    /// <summary>
    /// Starts <paramref name="startInfo"/> with its standard output and error read into <paramref name="log"/> as lines
    /// of run <paramref name="run"/>; throws when the process could not be started.
    /// </summary>
    public static Process Start(ProcessStartInfo startInfo, BoundedLog log, int run)
    {
        startInfo.RedirectStandardOutput = true;
        startInfo.RedirectStandardError = true;
        startInfo.UseShellExecute = false;
        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                log.Add(new LogLine(run, IsStdErr: false, e.Data));
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                log.Add(new LogLine(run, IsStdErr: true, e.Data));
            }
        };
        if (!process.Start())
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start {startInfo.FileName} {string.Join(' ', startInfo.ArgumentList)}.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
