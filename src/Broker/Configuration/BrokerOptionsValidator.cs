using HookBroker.Broker.Core;
using HookBroker.Broker.Storage.Redis;
using Microsoft.Extensions.Options;

namespace HookBroker.Broker.Configuration;

/// <summary>Fails the broker's start with a clear message when a setting is out of range.</summary>
public sealed class BrokerOptionsValidator : IValidateOptions<BrokerOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, BrokerOptions options)
    {
        var failures = new List<string>();
        void Require(bool ok, string message)
        {
            if (!ok)
            {
                failures.Add(message);
            }
        }

        Require(System.Net.IPAddress.TryParse(options.ListenAddress, out _), $"HookBroker:ListenAddress '{options.ListenAddress}' is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)");
        Require(options.GrpcPort is > 0 and <= 65535, $"HookBroker:GrpcPort {options.GrpcPort} must be 1-65535");
        Require(options.HttpPort is > 0 and <= 65535, $"HookBroker:HttpPort {options.HttpPort} must be 1-65535");
        Require(options.GrpcPort != options.HttpPort, "HookBroker:GrpcPort and HookBroker:HttpPort must differ");
        Require(Enum.IsDefined(options.Storage), $"HookBroker:Storage '{options.Storage}' must be Sqlite, Memory or Redis");
        if (options.Storage == StorageEngine.Redis)
        {
            var redis = options.Redis;
            Require(!string.IsNullOrWhiteSpace(redis.Configuration), "HookBroker:Redis:Configuration must name at least one Redis endpoint (host:port, or several nodes of a cluster separated by commas)");
            Require(!string.IsNullOrWhiteSpace(redis.KeyPrefix) && redis.KeyPrefix.IndexOfAny(['{', '}', ' ', '\n']) < 0, $"HookBroker:Redis:KeyPrefix '{redis.KeyPrefix}' must be non-empty, without braces or spaces");
            Require(redis.Partitions is null or (>= 1 and <= RedisStoreOptions.MaxPartitions), $"HookBroker:Redis:Partitions {redis.Partitions} must be 1-{RedisStoreOptions.MaxPartitions} (or unset: the stored count, else 1 on a single Redis and 16 on a cluster)");
            Require(redis.NodeTimeout >= TimeSpan.FromSeconds(1) && redis.NodeTimeout <= TimeSpan.FromMinutes(10), $"HookBroker:Redis:NodeTimeout {redis.NodeTimeout} must be 1 second to 10 minutes");
        }

        Require(!string.IsNullOrWhiteSpace(options.DataPath), "HookBroker:DataPath must name a folder");
        Require(options.IdempotencyWindow > TimeSpan.Zero && options.IdempotencyWindow <= TimeSpan.FromDays(7), $"HookBroker:IdempotencyWindow {options.IdempotencyWindow} must be more than 0 and at most 7 days");
        Require(options.MaxArgsBytes is >= 1024 and <= 4 * 1024 * 1024 - 64 * 1024, $"HookBroker:MaxArgsBytes {options.MaxArgsBytes} must be 1024 to 4128768 (below gRPC's 4 MiB message limit)");
        // Protobuf's parser stops at 100 message levels and each args level costs 3, so deeper args could never arrive.
        Require(options.MaxArgsDepth is >= 1 and <= 32, $"HookBroker:MaxArgsDepth {options.MaxArgsDepth} must be 1-32 (deeper args exceed protobuf's parse limit)");
        Require(options.DefaultMaxInFlight is >= 1 and <= SubscribeRules.MaxInFlightLimit, $"HookBroker:DefaultMaxInFlight {options.DefaultMaxInFlight} must be 1-{SubscribeRules.MaxInFlightLimit}");
        Require(options.HeartbeatInterval >= TimeSpan.FromMilliseconds(100) && options.HeartbeatInterval <= TimeSpan.FromMinutes(10), $"HookBroker:HeartbeatInterval {options.HeartbeatInterval} must be 100 ms to 10 minutes");
        Require(options.MaintenanceInterval >= TimeSpan.FromMilliseconds(10) && options.MaintenanceInterval <= TimeSpan.FromMinutes(1), $"HookBroker:MaintenanceInterval {options.MaintenanceInterval} must be 10 ms to 1 minute");
        Require(options.ShutdownTimeout >= TimeSpan.Zero && options.ShutdownTimeout <= TimeSpan.FromMinutes(5), $"HookBroker:ShutdownTimeout {options.ShutdownTimeout} must be 0 to 5 minutes");

        ValidatePolicy("HookBroker:Defaults", options.Defaults, failures);
        foreach (var (group, policy) in options.Groups)
        {
            if (LabelRules.CheckGroup(group) is { } problem)
            {
                failures.Add($"HookBroker:Groups: {problem}");
            }

            ValidatePolicy($"HookBroker:Groups:{group}", policy, failures);
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidatePolicy(string path, GroupPolicyOptions policy, List<string> failures)
    {
        if (policy.AckDeadline is { } deadline && (deadline < TimeSpan.FromSeconds(1) || deadline > TimeSpan.FromHours(1)))
        {
            failures.Add($"{path}:AckDeadline {deadline} must be 1 s to 1 hour");
        }

        if (policy.MaxAttempts is { } attempts && attempts is < 1 or > 1000)
        {
            failures.Add($"{path}:MaxAttempts {attempts} must be 1-1000");
        }

        if (policy.BackoffInitial is { } initial && (initial < TimeSpan.Zero || initial > TimeSpan.FromHours(24)))
        {
            failures.Add($"{path}:BackoffInitial {initial} must be 0 to 24 hours");
        }

        if (policy.BackoffMax is { } max && (max < TimeSpan.Zero || max > TimeSpan.FromHours(24)))
        {
            failures.Add($"{path}:BackoffMax {max} must be 0 to 24 hours");
        }

        if (policy.BackoffInitial is { } i && policy.BackoffMax is { } m && i > m)
        {
            failures.Add($"{path}:BackoffInitial {i} must not exceed BackoffMax {m}");
        }

        if (policy.Retention is { } retention && (retention < TimeSpan.FromSeconds(1) || retention > TimeSpan.FromDays(365)))
        {
            failures.Add($"{path}:Retention {retention} must be 1 s to 365 days");
        }

        if (policy.MaxBacklog is { } backlog && backlog < 1)
        {
            failures.Add($"{path}:MaxBacklog {backlog} must be at least 1");
        }
    }
}
