using System.Diagnostics;

namespace HookBroker.Benchmarks;

/// <summary>Raise-to-handler latencies (Stopwatch timestamps taken in this process), with nearest-rank percentiles.</summary>
internal sealed class Latencies(int capacity)
{
    private readonly double[] _millis = new double[capacity];
    private int _count;

    public void Add(long sentTimestamp)
    {
        var index = Interlocked.Increment(ref _count) - 1;
        if (index < _millis.Length)
        {
            _millis[index] = Stopwatch.GetElapsedTime(sentTimestamp).TotalMilliseconds;
        }
    }

    public (double P50, double P99, double P999) Percentiles()
    {
        var n = Math.Min(_count, _millis.Length);
        if (n == 0)
        {
            return (0, 0, 0);
        }

        var sorted = _millis[..n];
        Array.Sort(sorted);
        double Rank(double p) => sorted[Math.Clamp((int)Math.Ceiling(p * n) - 1, 0, n - 1)];
        return (Rank(0.50), Rank(0.99), Rank(0.999));
    }
}
