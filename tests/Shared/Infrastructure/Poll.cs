using System.Diagnostics;

namespace HookBroker.Tests.Infrastructure;

/// <summary>Waits for a condition by polling it; tests never sleep a guessed time.</summary>
internal static class Poll
{
    private static readonly TimeSpan FirstInterval = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan MaxInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Evaluates <paramref name="condition"/> until it returns true, waiting 5 ms doubling to 200 ms in between.
    /// Throws <see cref="TimeoutException"/> naming <paramref name="what"/> when <paramref name="timeout"/> passes;
    /// an exception thrown by the condition ends the wait at once.
    /// </summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        var elapsed = Stopwatch.StartNew();
        var interval = FirstInterval;
        while (!await condition())
        {
            if (elapsed.Elapsed >= timeout)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0.#} s waiting for {what}.");
            }

            await Task.Delay(interval, cancellationToken);
            interval = TimeSpan.FromTicks(Math.Min(interval.Ticks * 2, MaxInterval.Ticks));
        }
    }

    /// <inheritdoc cref="UntilAsync(Func{Task{bool}}, TimeSpan, string, CancellationToken)"/>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what, cancellationToken);
}
