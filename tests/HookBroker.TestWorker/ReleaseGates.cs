using System.Collections.Concurrent;
using System.Globalization;
using HookBroker.Client;

namespace HookBroker.TestWorker;

/// <summary>Held hooks, released by "release &lt;job&gt;" lines on stdin (a release may come before the hook waits).</summary>
internal sealed class ReleaseGates
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> gates = new(StringComparer.Ordinal);

    public Task WaitAsync(string job, CancellationToken cancellationToken) => Gate(job).Task.WaitAsync(cancellationToken);

    public async Task ReadCommandsAsync(TextReader input)
    {
        while (await input.ReadLineAsync() is { } line)
        {
            var parts = line.Split(' ', 2, StringSplitOptions.TrimEntries);
            if (parts is ["release", var job])
            {
                Gate(job).TrySetResult();
            }
        }
    }

    private TaskCompletionSource Gate(string job) =>
        gates.GetOrAdd(job, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
}

/// <summary>The lines the tests read.</summary>
internal static class Report
{
    public static void Line(string what, string job, HookContext context) =>
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"HOOK {what} job={job} event={context.EventId} attempt={context.Attempt}"));
}
