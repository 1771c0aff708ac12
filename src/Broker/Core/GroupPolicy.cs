using HookBroker.Broker.Configuration;
using HookBroker.Broker.Storage;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Core;

/// <summary>The effective delivery policy of one group.</summary>
public sealed record GroupPolicy(
    TimeSpan AckDeadline,
    int MaxAttempts,
    TimeSpan BackoffInitial,
    TimeSpan BackoffMax,
    TimeSpan Retention,
    long MaxBacklog)
{
    /// <summary>The documented defaults.</summary>
    public static readonly GroupPolicy Default = new(
        TimeSpan.FromSeconds(30), 5, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10), TimeSpan.FromDays(7), 10_000_000);

    /// <summary>The retry delay after failed attempt <paramref name="attempt"/> (1-based): doubling from
    /// <see cref="BackoffInitial"/>, capped at <see cref="BackoffMax"/>, with +/-20% jitter.</summary>
    public TimeSpan Backoff(int attempt, Random random)
    {
        var exponent = Math.Clamp(attempt - 1, 0, 40);
        var ticks = Math.Min(BackoffMax.Ticks, BackoffInitial.Ticks * Math.Pow(2, exponent));
        var jittered = ticks * (0.8 + (0.4 * random.NextDouble()));
        return TimeSpan.FromTicks((long)Math.Min(jittered, BackoffMax.Ticks));
    }
}

/// <summary>Resolves each group's policy from configuration: its own entry over the defaults.</summary>
public sealed class GroupPolicies : IGroupPolicies
{
    private readonly GroupPolicy _defaults;
    private readonly Dictionary<string, GroupPolicy> _overrides;

    /// <summary>Reads the policies once (options are validated at start).</summary>
    public GroupPolicies(IOptions<BrokerOptions> options)
    {
        var o = options.Value;
        _defaults = Merge(GroupPolicy.Default, o.Defaults);
        _overrides = o.Groups.ToDictionary(kv => kv.Key, kv => Merge(_defaults, kv.Value), StringComparer.Ordinal);
    }

    /// <summary>The policy of <paramref name="group"/>.</summary>
    public GroupPolicy For(string group) => _overrides.TryGetValue(group, out var policy) ? policy : _defaults;

    /// <inheritdoc />
    public int MaxAttempts(string group) => For(group).MaxAttempts;

    private static GroupPolicy Merge(GroupPolicy baseline, GroupPolicyOptions options) => new(
        options.AckDeadline ?? baseline.AckDeadline,
        options.MaxAttempts ?? baseline.MaxAttempts,
        options.BackoffInitial ?? baseline.BackoffInitial,
        options.BackoffMax ?? baseline.BackoffMax,
        options.Retention ?? baseline.Retention,
        options.MaxBacklog ?? baseline.MaxBacklog);
}
