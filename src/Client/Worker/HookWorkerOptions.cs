namespace HookBroker.Client;

/// <summary>Settings of the worker host registered by <c>services.AddHookWorker(...)</c>. Every property documents its default.</summary>
public sealed class HookWorkerOptions
{
    /// <summary>
    /// The broker's gRPC address, used when <see cref="Addresses"/> is empty. Default: <c>http://127.0.0.1:5000</c>.
    /// </summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:5000");

    /// <summary>
    /// Several broker nodes that share one storage (scale-out), such as <c>http://broker-1:5000</c> and
    /// <c>http://broker-2:5000</c>: only scheme, host and port, all http or all https. When it lists any,
    /// <see cref="Address"/> is ignored. The subscription goes to one node whose connection is ready (round-robin, so
    /// the workers of a group spread over the nodes); when that node goes away, the worker reconnects to another. From
    /// configuration, as the worker sample binds it: <c>HookBroker:Addresses:0</c>, <c>:1</c>… (environment variables
    /// <c>HookBroker__Addresses__0</c>…). Default: empty.
    /// </summary>
    public IList<Uri> Addresses { get; } = new List<Uri>();

    /// <summary>
    /// How long connecting to one broker node may take before it counts as down (the worker then reconnects, to another
    /// node when there are several). A refused connection fails at once. Default: 5 seconds.
    /// </summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

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
