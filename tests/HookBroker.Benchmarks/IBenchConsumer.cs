namespace HookBroker.Benchmarks;

/// <summary>One worker of a group in the e2e and fanout scenarios: what it received, and when it has everything.</summary>
internal interface IBenchConsumer : IAsyncDisposable
{
    /// <summary>Completes once every one of the expected events arrived at least once.</summary>
    Task Done { get; }

    /// <summary>Distinct events received (by sequence number).</summary>
    int Distinct { get; }

    /// <summary>Deliveries of an event already received.</summary>
    long Duplicates { get; }
}
