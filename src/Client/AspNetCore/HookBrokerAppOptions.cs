namespace HookBroker.Client;

/// <summary>
/// Settings of the ASP.NET Core integration registered by <c>services.AddHookBroker(...)</c>. Every property documents
/// its default.
/// </summary>
public sealed class HookBrokerAppOptions
{
    /// <summary>The client's settings (broker address, source, retries, circuit breaker).</summary>
    public HookBrokerClientOptions Client { get; } = new();

    /// <summary>
    /// Whether the default events (<c>startup</c>, <c>shutdown</c>, <c>request_start</c>, <c>request_end</c>) are also
    /// raised through the broker when a group listens to them. Local hooks run either way. Default: true.
    /// </summary>
    public bool RaiseDefaultEventsRemotely { get; set; } = true;

    /// <summary>
    /// How many default events may wait to be sent to the broker. When it is full, new default events are dropped and
    /// counted (metric <c>hookbroker.client.default_events.dropped</c>, and a rate-limited warning); the app's own
    /// <c>ExecuteEventAsync</c> raises never go through it. 1–1,000,000. Default: 10,000.
    /// </summary>
    public int DefaultEventBufferCapacity { get; set; } = 10_000;

    /// <summary>The most default events sent to the broker in one batch (one <c>RaiseStream</c> message). 1–10,000. Default: 500.</summary>
    public int DefaultEventBatchSize { get; set; } = 500;

    /// <summary>How often at most the "default events dropped" warning is logged. Default: 1 minute.</summary>
    public TimeSpan DropWarningInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// On shutdown, how long buffered default events (the <c>shutdown</c> event included) may take to reach the broker;
    /// what is left then is dropped and counted. Keep it below the host's shutdown timeout. Default: 5 seconds.
    /// </summary>
    public TimeSpan ShutdownFlushTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The first delay before reconnecting the interest stream, doubling (with jitter) after each failure. Default: 200 ms.</summary>
    public TimeSpan ReconnectInitialDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest delay between two reconnections of the interest stream. Default: 30 seconds.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);
}
