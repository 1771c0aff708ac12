using System.Text.Json;

namespace HookBroker.Client;

/// <summary>Settings of a <see cref="HookBrokerClient"/>. Every property documents its default.</summary>
public sealed class HookBrokerClientOptions
{
    /// <summary>
    /// The broker's gRPC address, used when <see cref="Addresses"/> is empty. Default: <c>http://127.0.0.1:5000</c>.
    /// </summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:5000");

    /// <summary>
    /// Several broker nodes that share one storage (scale-out), such as <c>http://broker-1:5000</c> and
    /// <c>http://broker-2:5000</c>: only scheme, host and port, all http or all https. When it lists any,
    /// <see cref="Address"/> is ignored. Calls are spread round-robin over the nodes whose connection is ready (the nodes
    /// are stateless, so any serves any call): a dead node is skipped and a retried raise goes to the next node (its
    /// idempotency key keeps it stored once, storage being shared). From configuration, as the web sample binds it:
    /// <c>HookBroker:Client:Addresses:0</c>, <c>:1</c>… (environment variables <c>HookBroker__Client__Addresses__0</c>…).
    /// Default: empty.
    /// </summary>
    public IList<Uri> Addresses { get; } = new List<Uri>();

    /// <summary>
    /// How long connecting to one broker node may take before it counts as down: its calls fail with <c>UNAVAILABLE</c>
    /// and are retried, on another node when there are several. A refused connection fails at once. Default: 5 seconds.
    /// </summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Who raises (an app name), carried to deliveries as their source. Default: null (not sent).</summary>
    public string? Source { get; set; }

    /// <summary>
    /// The deadline of one raise attempt (in wait mode, added to the wait timeout). A timed-out attempt is retried with
    /// the same idempotency key. Default: 10 seconds.
    /// </summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Whether concurrent raises share long-lived <c>RaiseStream</c> calls (one per broker node): each
    /// <see cref="IHookBrokerClient.ExecuteEventAsync"/> still awaits its own answer, with the same idempotency key,
    /// retries, timeout, wait mode and exceptions as a unary raise, but raises made at the same moment (a web app under
    /// load) travel as one stream message of up to 256 raises (about 1 MB) instead of one gRPC call each. A broker that
    /// does not serve <c>RaiseStream</c> is sent unary raises instead; false always raises unary. Default: true.
    /// </summary>
    public bool Batching { get; set; } = true;

    /// <summary>
    /// How args objects become the wire's JSON object. Default: null, meaning <see cref="JsonSerializerOptions"/> with
    /// no naming policy (property names travel as written; hooks bind them case- and snake_case-insensitively).
    /// </summary>
    public JsonSerializerOptions? JsonSerializerOptions { get; set; }

    /// <summary>Retries of transient failures (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL).</summary>
    public HookBrokerRetryOptions Retry { get; } = new();

    /// <summary>The circuit breaker that stops hammering a broker that is down.</summary>
    public HookBrokerCircuitBreakerOptions CircuitBreaker { get; } = new();
}

/// <summary>
/// Retries of a raise that failed with <c>UNAVAILABLE</c>, <c>DEADLINE_EXCEEDED</c> or <c>INTERNAL</c>; never
/// <c>INVALID_ARGUMENT</c>, <c>RESOURCE_EXHAUSTED</c> or cancellation. Delays grow exponentially with jitter.
/// </summary>
public sealed class HookBrokerRetryOptions
{
    /// <summary>Retries after the first attempt; 0 disables retries. Default: 4.</summary>
    public int MaxRetryAttempts { get; set; } = 4;

    /// <summary>The delay before the first retry, doubling after each. Default: 200 milliseconds.</summary>
    public TimeSpan InitialDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest delay between two attempts. Default: 5 seconds.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Whether delays are jittered (decorrelated), so many clients do not retry in step. Default: true.</summary>
    public bool UseJitter { get; set; } = true;
}

/// <summary>
/// A circuit breaker around raise attempts: once the share of transient failures within <see cref="SamplingDuration"/>
/// reaches <see cref="FailureRatio"/> (over at least <see cref="MinimumThroughput"/> attempts), raises fail fast with
/// <see cref="BrokerUnavailableException"/> for <see cref="BreakDuration"/>, then one trial attempt decides.
/// </summary>
public sealed class HookBrokerCircuitBreakerOptions
{
    /// <summary>Whether the circuit breaker is used. Default: true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The failure share (0–1] that opens the circuit. Default: 0.5.</summary>
    public double FailureRatio { get; set; } = 0.5;

    /// <summary>Attempts needed within the sampling window before the ratio counts. Default: 10.</summary>
    public int MinimumThroughput { get; set; } = 10;

    /// <summary>The window over which failures are counted. Default: 30 seconds.</summary>
    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the circuit stays open. Default: 5 seconds.</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(5);
}
