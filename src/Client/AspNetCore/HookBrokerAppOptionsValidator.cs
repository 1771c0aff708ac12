using Microsoft.Extensions.Options;

namespace HookBroker.Client.Internal;

/// <summary>Fails the host's start with a message naming the bad setting.</summary>
internal sealed class HookBrokerAppOptionsValidator : IValidateOptions<HookBrokerAppOptions>
{
    public ValidateOptionsResult Validate(string? name, HookBrokerAppOptions options)
    {
        var failures = new List<string>();
        var client = options.Client;
        BrokerAddresses.Validate("HookBrokerAppOptions.Client", client.Address, client.Addresses, failures);
        if (client.ConnectTimeout <= TimeSpan.Zero)
        {
            failures.Add($"HookBrokerAppOptions.Client.ConnectTimeout must be positive (got {client.ConnectTimeout}).");
        }

        if (client.AttemptTimeout <= TimeSpan.Zero)
        {
            failures.Add("HookBrokerAppOptions.Client.AttemptTimeout must be positive.");
        }

        if (client.Source is { Length: > 200 })
        {
            failures.Add("HookBrokerAppOptions.Client.Source must be at most 200 characters.");
        }

        if (options.DefaultEventBufferCapacity is < 1 or > 1_000_000)
        {
            failures.Add($"HookBrokerAppOptions.DefaultEventBufferCapacity must be 1-1000000 (got {options.DefaultEventBufferCapacity}).");
        }

        if (options.DefaultEventBatchSize is < 1 or > 10_000)
        {
            failures.Add($"HookBrokerAppOptions.DefaultEventBatchSize must be 1-10000 (got {options.DefaultEventBatchSize}).");
        }

        if (options.DropWarningInterval < TimeSpan.Zero)
        {
            failures.Add("HookBrokerAppOptions.DropWarningInterval must not be negative.");
        }

        if (options.ShutdownFlushTimeout < TimeSpan.Zero)
        {
            failures.Add("HookBrokerAppOptions.ShutdownFlushTimeout must not be negative.");
        }

        if (options.ReconnectInitialDelay <= TimeSpan.Zero || options.ReconnectMaxDelay < options.ReconnectInitialDelay)
        {
            failures.Add("HookBrokerAppOptions.ReconnectInitialDelay must be positive and at most ReconnectMaxDelay.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
