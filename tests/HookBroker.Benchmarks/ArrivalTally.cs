namespace HookBroker.Benchmarks;

/// <summary>
/// What the SDK worker's handlers received, from any number of handlers at once: the first arrival of each sequence
/// number records its latency, a later one counts as a duplicate; <see cref="Done"/> completes at the last distinct one.
/// The same meaning as the raw consumer's single-threaded count.
/// </summary>
internal sealed class ArrivalTally
{
    private readonly int[] _seen;
    private readonly Latencies _latencies;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _distinct;
    private long _duplicates;

    public ArrivalTally(int n, Latencies latencies)
    {
        _seen = new int[n];
        _latencies = latencies;
        if (n == 0)
        {
            _done.TrySetResult();
        }
    }

    public Task Done => _done.Task;

    public int Distinct => Volatile.Read(ref _distinct);

    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>One delivery of event <paramref name="sequence"/>, sent at Stopwatch timestamp <paramref name="sentAt"/>.</summary>
    public void Record(int sequence, long sentAt)
    {
        if ((uint)sequence < (uint)_seen.Length && Interlocked.Exchange(ref _seen[sequence], 1) == 0)
        {
            _latencies.Add(sentAt);
            if (Interlocked.Increment(ref _distinct) == _seen.Length)
            {
                _done.TrySetResult();
            }
        }
        else
        {
            Interlocked.Increment(ref _duplicates);
        }
    }
}
