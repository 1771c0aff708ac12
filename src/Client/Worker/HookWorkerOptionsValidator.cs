using Microsoft.Extensions.Options;

namespace HookBroker.Client.Internal;

/// <summary>Fails the host's start with a message naming the bad setting.</summary>
internal sealed class HookWorkerOptionsValidator : IValidateOptions<HookWorkerOptions>
{
    public ValidateOptionsResult Validate(string? name, HookWorkerOptions options)
    {
        var failures = new List<string>();
        BrokerAddresses.Validate(nameof(HookWorkerOptions), options.Address, options.Addresses, failures);
        if (options.ConnectTimeout <= TimeSpan.Zero)
        {
            failures.Add($"HookWorkerOptions.ConnectTimeout must be positive (got {options.ConnectTimeout}).");
        }

        if (string.IsNullOrEmpty(options.Group) || options.Group.Length > 100
            || !options.Group.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
        {
            failures.Add($"HookWorkerOptions.Group must be 1-100 characters of [A-Za-z0-9_.-] (got '{options.Group}').");
        }

        if (options.MaxInFlight is < 1 or > 10_000)
        {
            failures.Add($"HookWorkerOptions.MaxInFlight must be 1-10000 (got {options.MaxInFlight}).");
        }

        if (options.MaxConcurrency < 1 || options.MaxConcurrency > options.MaxInFlight)
        {
            failures.Add($"HookWorkerOptions.MaxConcurrency must be 1 to MaxInFlight ({options.MaxInFlight}) (got {options.MaxConcurrency}).");
        }

        if (options.WorkerName is { Length: > 200 })
        {
            failures.Add("HookWorkerOptions.WorkerName must be at most 200 characters.");
        }

        if (options.DrainTimeout <= TimeSpan.Zero)
        {
            failures.Add("HookWorkerOptions.DrainTimeout must be positive.");
        }

        if (options.ReconnectInitialDelay <= TimeSpan.Zero || options.ReconnectMaxDelay < options.ReconnectInitialDelay)
        {
            failures.Add("HookWorkerOptions.ReconnectInitialDelay must be positive and at most ReconnectMaxDelay.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
