namespace HookBroker.Client;

/// <summary>Settings of the worker host registered by <c>services.AddHookWorker(...)</c>. Every property documents its default.</summary>
public sealed class HookWorkerOptions
{
    /// <summary>The broker's gRPC address. Default: <c>http://127.0.0.1:5000</c>.</summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:5000");

    /// <summary>The group this worker belongs to (an app name such as <c>email-sender</c>): 1–100 chars of <c>[A-Za-z0-9_.-]</c>. Required.</summary>
    public string Group { get; set; } = string.Empty;

    /// <summary>A name for the broker's logs and admin views. Default: null, meaning the machine name and process id.</summary>
    public string? WorkerName { get; set; }

    /// <summary>How many deliveries the broker may lease to this worker at once (1–10,000). Default: 100.</summary>
    public int MaxInFlight { get; set; } = 100;

    /// <summary>How many handlers run at once (1 to <see cref="MaxInFlight"/>). Default: 8.</summary>
    public int MaxConcurrency { get; set; } = 8;

    /// <summary>
    /// On shutdown, how long running handlers may take to finish; past it they are canceled and their deliveries nacked.
    /// Keep it below the host's shutdown timeout (30 s by default). Default: 20 seconds.
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>The first delay before reconnecting to a broker that went away, doubling (with jitter) after each failure. Default: 200 ms.</summary>
    public TimeSpan ReconnectInitialDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest delay between two reconnection attempts. Default: 30 seconds.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(30);
}
